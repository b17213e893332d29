"""Data path: when a failed attempt may be retried (Istio ``HTTPRetry`` on Envoy semantics).

Connect failures are always safe to retry (nothing reached the upstream). After the request was
sent, only idempotent methods whose body is still in memory are retried (RFC 9110 §9.2.2): this
is stricter than Envoy, which would also retry a POST on a retriable status. Retries wait a
jittered exponential back-off (Envoy: random in ``[0, base·2ⁿ)``, capped at ten times the base).
"""

from __future__ import annotations

import random

from gateway_core.routing.actions import DEFAULT_RETRY, RetrySpec
from gateway_core.routing.route_table import RouteEntry

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})


def retry_policy(entry: RouteEntry | None) -> RetrySpec:
    return entry.retries if entry is not None and entry.retries is not None else DEFAULT_RETRY


def retriable_status(retry: RetrySpec, status: int) -> bool:
    on = retry.retry_on
    return (
        ("retriable-status-codes" in on and status in retry.retriable_status_codes)
        or (status >= 500 and "5xx" in on)
        or (status in (502, 503, 504) and "gateway-error" in on)
    )


def failure_retriable(retry: RetrySpec, kind: str) -> bool:
    """``kind``: connect-failure, reset (connection lost or invalid response before headers)
    or timeout (per try, or the upstream went silent)."""
    on = retry.retry_on
    if kind == "connect-failure":
        return "connect-failure" in on
    if kind == "reset":
        return bool({"reset", "5xx", "gateway-error"} & on)
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
