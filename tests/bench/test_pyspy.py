"""Benchmark: ranking functions from py-spy's collapsed stacks."""

from __future__ import annotations

import pytest

from bench.pyspy import parse_collapsed

STACKS = """\
<module> (gw);Runner.run (asyncio/runners.py);data_received (d.py);parse (p.py) 6
<module> (gw);Runner.run (asyncio/runners.py);data_received (d.py);write (w.py) 3
<module> (gw);Runner.run (asyncio/runners.py);walk (r.py);walk (r.py) 1
Thread._bootstrap (threading.py);Thread.run (threading.py);_worker (concurrent/futures/thread.py) 5
not a stack line
"""


def test_self_and_inclusive_shares() -> None:
    """Self counts the leaf, inclusive counts each function once per sample."""
    profile = parse_collapsed(STACKS)
    assert profile.samples == 10
    by_self = {h.function: h.self_pct for h in profile.by_self}
    assert by_self["parse (p.py)"] == 60.0
    assert by_self["write (w.py)"] == 30.0
    assert by_self["walk (r.py)"] == 10.0
    inclusive = {h.function: h.inclusive_pct for h in profile.by_inclusive}
    assert inclusive["data_received (d.py)"] == 90.0
    assert inclusive["walk (r.py)"] == 10.0


def test_helper_thread_stacks_are_ignored() -> None:
    """Samples of threads other than the event loop's are not counted at all."""
    profile = parse_collapsed(STACKS)
    names = {h.function for h in (*profile.by_self, *profile.by_inclusive)}
    assert "_worker (concurrent/futures/thread.py)" not in names
    assert profile.samples == 10


def test_root_frames_are_left_out_of_inclusive_ranking() -> None:
    """Frames on every stack (module, loop runner) do not crowd the inclusive list."""
    names = [h.function for h in parse_collapsed(STACKS).by_inclusive]
    assert "<module> (gw)" not in names
    assert "Runner.run (asyncio/runners.py)" not in names
    assert names[0] == "data_received (d.py)"


def test_top_limits_and_empty_input() -> None:
    """``top`` caps both lists; no samples gives an empty profile."""
    profile = parse_collapsed(STACKS, top=1)
    assert [h.function for h in profile.by_self] == ["parse (p.py)"]
    assert len(profile.by_inclusive) == 1
    empty = parse_collapsed("")
    assert (empty.samples, empty.by_self, empty.by_inclusive) == (0, (), ())
    assert parse_collapsed("a;b 2").by_self[0].self_pct == pytest.approx(100.0)
