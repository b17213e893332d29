"""Tests: the dashboard's rate arithmetic (``RateSampler``) and host states (``host_state``)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_core.server.live import Counters, RateSampler, host_state


def sample(at: float, downstream: int, **clusters: int) -> Counters:
    return Counters(at, downstream, dict(clusters), {("c", "10.0.0.1", 80): downstream})


def test_no_rate_before_two_samples() -> None:
    sampler = RateSampler(window=2.0)
    assert sampler.rates() is None
    sampler.add(sample(10.0, 5, a=5))
    assert sampler.rates() is None


def test_rates_span_the_window_and_old_samples_are_dropped() -> None:
    """Per second between the oldest kept sample and the newest; the oldest kept one is the
    newest that is at least a window old."""
    sampler = RateSampler(window=2.0)
    for i in range(10):  # one sample every 0.5 s, 10 requests each time to cluster a
        sampler.add(sample(100.0 + 0.5 * i, 10 * i, a=10 * i))
    rates = sampler.rates()
    assert rates is not None
    assert rates.span == pytest.approx(2.0)
    assert rates.downstream == pytest.approx(20.0)
    assert rates.clusters == {"a": pytest.approx(20.0)}
    assert rates.hosts == {("c", "10.0.0.1", 80): pytest.approx(20.0)}


def test_new_and_replaced_clusters_count_from_zero() -> None:
    """A cluster absent from the old sample counts all it has; a counter that went down (a
    replaced cluster) counts from zero rather than going negative."""
    sampler = RateSampler(window=1.0)
    sampler.add(sample(0.0, 100, a=100))
    sampler.add(sample(1.0, 130, a=4, b=6))
    rates = sampler.rates()
    assert rates is not None
    assert rates.clusters == {"a": 4.0, "b": 6.0}
    assert rates.downstream == 30.0


def host(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ejected": False, "health_check_failed": False, "health_check": None}
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "healthy"),
        ({"health_check": {"failures": 0, "successes": 3}}, "healthy"),
        ({"health_check": {"failures": 1, "successes": 0}}, "failing"),
        ({"health_check_failed": True, "health_check": {"failures": 2}}, "unhealthy"),
        ({"ejected": True, "health_check_failed": True}, "ejected"),
    ],
)
def test_host_state(fields: dict[str, Any], state: str) -> None:
    assert host_state(host(**fields)) == state
