"""Tests: a worker slot's restart back-off."""

from __future__ import annotations

from gateway_core.server.workers import MAX_BACKOFF, QUICK_EXIT, WorkerHandle


def test_a_crash_looping_worker_backs_off_and_a_healthy_one_comes_back_at_once() -> None:
    handle = WorkerHandle(0)
    delays = []
    for _ in range(9):
        handle.started = 100.0
        delays.append(handle.restart_delay(100.5))  # died half a second after starting
    assert delays == [0.0, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, MAX_BACKOFF, MAX_BACKOFF]
    handle.started = 100.0
    assert handle.restart_delay(100.0 + QUICK_EXIT + 1) == 0.0  # it ran a while: at once
    assert handle.quick_exits == 0
