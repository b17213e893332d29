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
    retriable_response,
    retriable_status,
)
from gateway_core.routing.actions import DEFAULT_RETRY, RetrySpec
from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.resources import ResourceManager


def test_retriable_status() -> None:
    """Istio's default (1.24 and later) retries no status, 503 included; listed codes (4xx
    too), 5xx and gateway-error do."""
    assert not any(retriable_status(DEFAULT_RETRY, s) for s in (500, 502, 503, 504))
    codes = RetrySpec(retry_on=frozenset({"retriable-status-codes"}))
    assert not retriable_status(codes, 503)
    listed = RetrySpec(retriable_status_codes=frozenset({409, 503}))
    assert retriable_status(listed, 409) and retriable_status(listed, 503)
    assert not retriable_status(listed, 502)
    assert retriable_status(RetrySpec(retry_on=frozenset({"5xx"})), 500)
    gateway = RetrySpec(retry_on=frozenset({"gateway-error"}))
    assert retriable_status(gateway, 504) and not retriable_status(gateway, 500)


@pytest.mark.parametrize(
    ("retry_on", "grpc_status", "retried"),
    [
        ("default", b"14", True),
        ("default", b"1", True),
        ("default", b"4", False),
        ("default", b"0", False),
        ("default", b"x", False),
        ("default", None, False),
        ("deadline-exceeded", b"4", True),
        ("5xx", b"14", False),
    ],
)
def test_retriable_response_reads_grpc_status_in_the_head(
    retry_on: str, grpc_status: bytes | None, retried: bool
) -> None:
    """unavailable (14) and cancelled (1), Istio's default gRPC conditions, and the other
    gRPC conditions retry a head whose grpc-status names them; a 200 without one does not."""
    spec = DEFAULT_RETRY if retry_on == "default" else RetrySpec(retry_on=frozenset({retry_on}))
    headers = [(b"content-type", b"application/grpc")]
    if grpc_status is not None:
        headers.append((b"grpc-status", grpc_status))
    assert retriable_response(spec, 200, headers) is retried


def test_lb_context_follows_the_previous_hosts_predicate() -> None:
    """With the predicate a retry excludes the tried hosts and moves a hash on; without it
    every attempt selects as the first one did."""
    state = RetryState(buffered=False)
    state.attempts, state.tried = 1, frozenset()
    assert state.lb_context(None) == LbContext() and state.lb_context(7) == LbContext(7)
    tried = frozenset({("10.0.0.1", 80)})
    state.attempts, state.tried = 2, tried  # type: ignore[assignment]
    assert state.lb_context(7) == LbContext(7, 1, tried)
    assert state.lb_context(None) == LbContext(None, 1, tried)
    state.policy = RetrySpec(previous_hosts=False)
    assert state.lb_context(7) == LbContext(7) and state.lb_context(None) == LbContext()


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
