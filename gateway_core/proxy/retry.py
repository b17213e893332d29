"""Data path: when a failed attempt may be retried (Istio ``HTTPRetry`` on Envoy semantics).

Connect failures are always safe to retry (nothing reached the upstream). After the request was
sent, only idempotent methods whose body is still in memory are retried (RFC 9110 §9.2.2): this
is stricter than Envoy, which would also retry a POST on a retriable status. Retries wait a
jittered exponential back-off (Envoy: random in ``[0, base·2ⁿ)``, capped at ten times the base).
A response head asks for a retry by its status or, for the gRPC conditions, by a ``grpc-status``
in the head itself (a trailers-only gRPC response), as Envoy reads it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway_core.routing.actions import DEFAULT_RETRY, HeaderList, RetrySpec
from gateway_core.routing.route_table import RouteEntry
from gateway_core.upstream.host import HostKey
from gateway_core.upstream.lb import NO_CONTEXT, LbContext
from gateway_core.upstream.resources import Resource

if TYPE_CHECKING:
    from gateway_core.upstream.cluster import Cluster

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_NONE_TRIED: frozenset[HostKey] = frozenset()
REPLAY_LIMIT = 65536
"""Request bodies up to this size are kept for retries and mirrors; larger ones stream."""


def retry_policy(entry: RouteEntry | None) -> RetrySpec:
    return entry.retries if entry is not None and entry.retries is not None else DEFAULT_RETRY


def retriable_status(retry: RetrySpec, status: int) -> bool:
    on = retry.retry_on
    return (
        ("retriable-status-codes" in on and status in retry.retriable_status_codes)
        or (status >= 500 and "5xx" in on)
        or (status in (502, 503, 504) and "gateway-error" in on)
    )


def retriable_response(retry: RetrySpec, status: int, headers: HeaderList) -> bool:
    """Whether a response head is retriable: by its status (``retriable_status``), or by its
    ``grpc-status`` when ``retry_on`` names that gRPC condition (``unavailable`` is 14,
    ``cancelled`` 1, ...). A gRPC error without a body (trailers-only) carries it in the head."""
    if retriable_status(retry, status):
        return True
    if retry.grpc_statuses:
        for name, value in headers:
            if name == b"grpc-status":
                return value.strip().isdigit() and int(value) in retry.grpc_statuses
    return False


def failure_retriable(retry: RetrySpec, kind: str) -> bool:
    """``kind``: connect-failure, reset (connection lost or invalid response before headers),
    refused-stream or timeout (per try, or the upstream went silent)."""
    on = retry.retry_on
    if kind == "connect-failure":
        # Envoy: connect failures are included in 5xx, gateway-error and reset.
        return bool({"connect-failure", "5xx", "gateway-error", "reset"} & on)
    if kind == "reset":
        return bool({"reset", "5xx", "gateway-error"} & on)
    if kind == "refused-stream":
        # An HTTP/2 REFUSED_STREAM (or a stream past the host's GOAWAY): never processed.
        return bool({"refused-stream", "reset", "5xx", "gateway-error"} & on)
    return bool({"5xx", "gateway-error"} & on)


def may_retry(
    retry: RetrySpec,
    kind: str,
    *,
    attempts: int,
    replayable: bool,
    sent: bool,
    retries_in_use: int,
    max_retries: int,
) -> bool:
    """``kind`` is ``status`` (a retriable status, checked by the caller) or a failure kind;
    ``attempts`` made so far; ``sent``: request bytes reached the upstream."""
    if attempts > retry.attempts:
        return False
    if kind != "status" and not failure_retriable(retry, kind):
        return False
    if sent and not replayable:
        return False
    return retries_in_use < max_retries


def backoff(retry: RetrySpec, retry_number: int, rng: random.Random) -> float:
    """Seconds to wait before retry ``retry_number`` (0 for the first retry)."""
    ceiling = min(retry.backoff * (1 << min(retry_number, 16)), retry.backoff * 10)
    return rng.random() * ceiling


class RetryState:
    """Per exchange: the policy, attempts made, hosts tried, a replay copy of the request body
    (up to ``REPLAY_LIMIT``), the body held for the next attempt, the back-off timer, and
    whether this exchange holds one of its cluster's ``retries`` resource (Envoy counts retries
    in flight against that breaker, ``maxRetries``)."""

    __slots__ = (
        "_budget",
        "attempts",
        "held",
        "held_size",
        "policy",
        "replay",
        "replay_size",
        "timer",
        "tried",
    )

    tried: frozenset[HostKey]
    replay: list[bytes] | None
    held: list[bytes]
    """Body bytes no attempt has taken yet (fault delay, back-off, a failed connect)."""
    timer: asyncio.TimerHandle | None
    _budget: Resource | None

    def __init__(self, buffered: bool) -> None:
        self.policy = DEFAULT_RETRY
        self.attempts = self.replay_size = self.held_size = 0
        self.tried = _NONE_TRIED
        self.replay = [] if buffered else None
        self.held = []
        self.timer = self._budget = None

    def lb_context(self, hash_key: int | None) -> LbContext:
        """Host selection input for the attempt being made. With Envoy's ``previous_hosts``
        predicate a retry avoids the hosts already tried (a hashing balancer moves on past
        them); without it (Istio's default for a single consistent-hash destination) every
        attempt selects as the first one did."""
        if not self.policy.previous_hosts:
            return NO_CONTEXT if hash_key is None else LbContext(hash_key)
        tried = self.tried
        if hash_key is None and not tried:
            return NO_CONTEXT if self.attempts == 1 else LbContext(None, self.attempts - 1)
        return LbContext(hash_key, self.attempts - 1, tried)

    def keep(self, data: bytes) -> None:
        if self.replay is not None:
            self.replay_size += len(data)
            if self.replay_size <= REPLAY_LIMIT:
                self.replay.append(data)
            else:
                self.replay = None

    def hold(self, data: bytes) -> int:
        """Hold body bytes for the next attempt; returns how many are held."""
        self.held.append(data)
        self.held_size += len(data)
        return self.held_size

    def take_held(self) -> tuple[list[bytes], int]:
        held, size = self.held, self.held_size
        self.held, self.held_size = [], 0
        return held, size

    def rewind(self, unsent: list[bytes] | None = None) -> None:
        """Before a retry: the next attempt sends ``unsent`` (nothing went out) followed by
        what arrived since, or else the whole body again from the replay copy."""
        body = unsent + self.held if unsent is not None else list(self.replay or ())
        self.held, self.held_size = body, sum(map(len, body))

    def allows(self, kind: str, *, sent: bool, replayable: bool, budget: Resource) -> bool:
        """``budget``: the cluster's ``retries`` resource. A retry refused by it alone counts
        as its overflow (Envoy ``upstream_rq_retry_overflow``)."""
        eligible = may_retry(
            self.policy,
            kind,
            attempts=self.attempts,
            replayable=replayable,
            sent=sent,
            retries_in_use=0,
            max_retries=1,
        )
        if not eligible:
            return False
        in_use = budget.count - (1 if self._budget is not None else 0)
        if in_use < budget.max:
            return True
        budget.overflow += 1
        return False

    def schedule(
        self,
        cluster: Cluster,
        loop: asyncio.AbstractEventLoop,
        rng: random.Random,
        attempt: Callable[[], None],
    ) -> None:
        cluster.stats.retries += 1
        if self._budget is None:
            self._budget = cluster.resources.retries
            self._budget.inc()
        delay = backoff(self.policy, self.attempts - 1, rng)
        self.timer = loop.call_later(delay, attempt)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self._budget is not None:
            self._budget.dec()
            self._budget = None
