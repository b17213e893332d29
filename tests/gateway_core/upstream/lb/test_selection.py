"""EDF scheduler and retry-skipping helpers."""

from __future__ import annotations

from lb_testkit import make_host

from gateway_core.upstream.lb.selection import (
    EdfScheduler,
    candidates,
    integer_steps,
    pick_avoiding,
)


def test_integer_steps_are_lcm_over_weight() -> None:
    """Steps for weights 3, 1, 2 are lcm(6)/w = 2, 6, 3."""
    assert integer_steps([3, 1, 2]) == [2, 6, 3]


def test_edf_interleaves_and_breaks_ties_by_queue_order() -> None:
    """Weights 3:1 give a a b a a a b ...: ties go to the entry queued first."""
    edf: EdfScheduler[str] = EdfScheduler()
    for item, step in zip("ab", integer_steps([3, 1]), strict=True):
        edf.add(item, step)
    assert "".join(edf.pick() or "" for _ in range(11)) == "aabaaabaaab"


def test_edf_next_step_recomputes_weight_at_pick_time() -> None:
    """A step function makes an entry come back later once its weight drops."""
    edf: EdfScheduler[str] = EdfScheduler()
    edf.add("a", 1.0)
    edf.add("b", 1.0)
    steps = {"a": 4.0, "b": 1.0}
    order = [edf.pick(lambda item: steps[item]) for _ in range(6)]
    assert order == ["a", "b", "b", "b", "b", "a"]


def test_edf_empty_scheduler_picks_nothing() -> None:
    """An empty scheduler returns None."""
    assert EdfScheduler[str]().pick() is None


def test_pick_avoiding_skips_excluded_then_falls_back_to_first() -> None:
    """Excluded hosts are skipped; when every attempt is excluded the first pick is returned."""
    a, b = make_host("a"), make_host("b")
    sequence = iter([a, a, b])
    assert pick_avoiding(lambda: next(sequence), frozenset({a.key}), 3) is b
    only_a = iter([a, a, a])
    assert pick_avoiding(lambda: next(only_a), frozenset({a.key}), 3) is a


def test_candidates_drop_tried_hosts_unless_all_were_tried() -> None:
    """Tried hosts are removed from the candidates; all tried -> all hosts again."""
    a, b = make_host("a"), make_host("b")
    assert list(candidates([a, b], frozenset({a.key}))) == [b]
    assert list(candidates([a, b], frozenset({a.key, b.key}))) == [a, b]


def test_edf_accept_skips_without_consuming_turns() -> None:
    """Rejected entries keep their deadlines: after a filtered pick the order resumes."""
    edf: EdfScheduler[str] = EdfScheduler()
    for item, step in zip("ab", integer_steps([3, 1]), strict=True):
        edf.add(item, step)
    assert edf.pick(accept=lambda item: item != "a") == "b"
    assert "".join(edf.pick() or "" for _ in range(4)) == "aaaa"


def test_edf_accept_rejecting_everything_picks_earliest() -> None:
    """When no entry is acceptable the earliest one is returned anyway."""
    edf: EdfScheduler[str] = EdfScheduler()
    edf.add("a", 1)
    edf.add("b", 2)
    assert edf.pick(accept=lambda item: False) == "a"
    assert len(edf) == 2
