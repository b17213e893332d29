"""Tests for gateway_core/utils/id_batch.py: ids from batches, a fresh batch after fork."""

from __future__ import annotations

import os

from gateway_core.utils.id_batch import IdBatch


def test_ids_come_from_one_batch_until_it_runs_out() -> None:
    fills: list[int] = []

    def fill() -> list[bytes]:
        fills.append(1)
        return [b"%d-%d" % (len(fills), i) for i in range(3)]

    batch = IdBatch(fill)
    assert [batch.next() for _ in range(4)] == [b"1-2", b"1-1", b"1-0", b"2-2"]
    assert len(fills) == 2


def test_a_forked_child_does_not_hand_out_its_parents_ids() -> None:
    batch = IdBatch(lambda: [os.urandom(8).hex().encode() for _ in range(64)])
    batch.next()
    left = set(batch.ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the id it draws, then leave at once
        os.write(write, batch.next())
        os._exit(0)
    os.close(write)
    drawn = os.read(read, 64)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(drawn) == 16 and drawn not in left
    assert set(batch.ids) == left  # the parent's batch is untouched
