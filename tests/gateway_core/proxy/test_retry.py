"""Tests for gateway_core/proxy/retry.py: retry decisions, back-off and per-exchange state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from gateway_core.proxy.retry import (
    REPLAY_LIMIT,
    RetryState,
    backoff,
    failure_retriable,
    may_retry,
    retriable_status,
)
from gateway_core.routing.actions import DEFAULT_RETRY, RetrySpec
from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.resources import ResourceManager


def test_retriable_status() -> None:
    """Istio's default retries 503 only; 5xx and gateway-error widen it."""
    assert retriable_status(DEFAULT_RETRY, 503)
    assert not retriable_status(DEFAULT_RETRY, 502)
    assert retriable_status(RetrySpec(retry_on=frozenset({"5xx"})), 500)
    gateway = RetrySpec(retry_on=frozenset({"gateway-error"}))
    assert retriable_status(gateway, 504) and not retriable_status(gateway, 500)


def test_failure_kinds() -> None:
    """Connect failures need connect-failure; resets reset/5xx/gateway-error; timeouts 5xx or
    gateway-error (Envoy counts a per-try timeout as a 504)."""
    assert failure_retriable(DEFAULT_RETRY, "connect-failure")
    assert not failure_retriable(DEFAULT_RETRY, "reset")
    assert not failure_retriable(DEFAULT_RETRY, "timeout")
    assert failure_retriable(RetrySpec(retry_on=frozenset({"reset"})), "reset")
    assert failure_retriable(RetrySpec(retry_on=frozenset({"gateway-error"})), "timeout")


def allowed(kind: str, **kwargs: object) -> bool:
    args: dict[str, object] = {
        "attempts": 1,
        "replayable": True,
        "sent": True,
        "retries_in_use": 0,
        "max_retries": 3,
    }
    args.update(kwargs)
    spec = RetrySpec(retry_on=frozenset({"5xx", "connect-failure"}), attempts=2)
    return may_retry(spec, kind, **args)  # type: ignore[arg-type]


def test_may_retry() -> None:
    """Attempts are bounded; a request that reached the upstream is retried only when it can be
    replayed (idempotent, body in memory); connect failures always may; the breaker caps it."""
    assert allowed("status")
    assert allowed("reset", attempts=2)
    assert not allowed("reset", attempts=3)
    assert not allowed("status", replayable=False)
    assert allowed("connect-failure", replayable=False, sent=False)
    assert not allowed("status", retries_in_use=3)


def test_backoff_is_jittered_exponential_and_capped() -> None:
    """Retry n waits uniformly in [0, base·2ⁿ), capped at ten times the base (Envoy)."""
    rng = random.Random(7)
    spec = RetrySpec(backoff=0.025)
    for n, ceiling in [(0, 0.025), (1, 0.05), (2, 0.1), (3, 0.2), (4, 0.25), (30, 0.25)]:
        samples = [backoff(spec, n, rng) for _ in range(200)]
        assert min(samples) >= 0 and max(samples) < ceiling
        assert max(samples) > ceiling * 0.9


@dataclass
class _Stats:
    retries: int = 0


@dataclass
class _Cluster:
    resources: ResourceManager = field(
        default_factory=lambda: ResourceManager(PoolLimits(max_retries=1))
    )
    stats: _Stats = field(default_factory=_Stats)


class _Loop:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def call_later(self, delay: float, callback: object) -> _Timer:
        self.delays.append(delay)
        return _Timer()


class _Timer:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def test_replay_copy_stops_at_limit() -> None:
    """The replay copy keeps the body up to REPLAY_LIMIT bytes, then is dropped for good."""
    state = RetryState(buffered=True)
    state.keep(b"a" * 10)
    kept = state.replay
    state.keep(b"b" * REPLAY_LIMIT)
    assert kept == [b"a" * 10]
    assert state.replay is None
    assert RetryState(buffered=False).replay is None


def test_rewind_prefers_unsent_bytes_then_replay() -> None:
    """After a failed connect the unsent body (plus what arrived since) goes next; after a
    sent attempt the whole replay copy does."""
    state = RetryState(buffered=True)
    state.keep(b"ab")
    state.keep(b"cd")
    state.hold(b"ef")
    state.rewind([b"ab", b"cd"])
    assert state.take_held() == ([b"ab", b"cd", b"ef"], 6)
    state.rewind()
    assert state.take_held() == ([b"ab", b"cd"], 4)


def test_retry_budget_held_once_and_released() -> None:
    """An exchange holds one of the cluster's ``retries`` resource while it retries, however
    many retries it makes, and gives it back when closed; the back-off timer is cancelled. A
    retry refused by the breaker alone counts as its overflow; one the policy refuses does not."""
    cluster = _Cluster()
    retries = cluster.resources.retries
    state = RetryState(buffered=False)
    loop = _Loop()
    state.attempts = 1
    assert state.allows("status", sent=True, replayable=True, budget=retries)
    state.schedule(cluster, loop, random.Random(1), lambda: None)  # type: ignore[arg-type]
    state.attempts = 2
    assert retries.count == 1
    assert state.allows("status", sent=True, replayable=True, budget=retries)
    timer = state.timer
    state.schedule(cluster, loop, random.Random(1), lambda: None)  # type: ignore[arg-type]
    assert retries.count == 1 and cluster.stats.retries == 2
    assert loop.delays[0] < 0.025 and loop.delays[1] < 0.05
    other = RetryState(buffered=False)
    other.attempts = 1
    assert not other.allows("status", sent=True, replayable=True, budget=retries)
    assert retries.overflow == 1
    assert not other.allows("status", sent=True, replayable=False, budget=retries)
    assert retries.overflow == 1
    assert timer is not None
    state.close()
    released = (retries.count, state.timer)
    assert released == (0, None)


@pytest.mark.parametrize("attempts", [0, 1])
def test_zero_attempts_never_retries(attempts: int) -> None:
    """``retries.attempts: 0`` disables retries entirely."""
    assert not may_retry(
        RetrySpec(attempts=0),
        "connect-failure",
        attempts=attempts + 1,
        replayable=True,
        sent=False,
        retries_in_use=0,
        max_retries=3,
    )
