"""Data path: when a failed attempt may be retried (Istio ``HTTPRetry`` on Envoy semantics).

Connect failures are always safe to retry (nothing reached the upstream). After the request was
sent, only idempotent methods whose body is still in memory are retried (RFC 9110 §9.2.2): this
is stricter than Envoy, which would also retry a POST on a retriable status.
"""

from __future__ import annotations

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
    """``kind``: connect-failure, reset (connection lost before headers) or timeout (per try)."""
    on = retry.retry_on
    if kind == "connect-failure":
        return "connect-failure" in on
    if kind == "reset":
        return bool({"reset", "5xx", "gateway-error"} & on)
    return bool({"5xx", "gateway-error"} & on)
