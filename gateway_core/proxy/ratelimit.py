"""Data path: the local rate limit filter (Envoy's ``local_ratelimit``) for one exchange.

The limit's descriptor value picks a bucket of its limiter (``token_bucket.py``), found by
``spec.key`` among the process's live limiters; the event loop's clock is read once per
check. An empty bucket answers 429 ``RL`` with Envoy's body ``local_rate_limited`` and the
draft-03 ``x-ratelimit-*`` fields plus ``retry-after``; an allowed request carries no
rate-limit fields (``docs/rate-limiting.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.interfaces import AnsweringExchange
from gateway_core.proxy.token_bucket import Limiter
from gateway_core.routing.ratelimit import KeySource, RateLimitSpec

if TYPE_CHECKING:
    from gateway_core.routing.actions import HeaderList
    from gateway_core.security.principal import RequestAuth

BODY = b"local_rate_limited"
"""Envoy's body for a request its local rate limit refused."""


class LimitTarget(AnsweringExchange, Protocol):
    """What a rate limit reads of an exchange (``Exchange`` implements it)."""

    auth: RequestAuth | None


def descriptor_value(ex: LimitTarget, spec: RateLimitSpec) -> bytes | None:
    """The value that picks the bucket; None for a limit without descriptor. A request
    without the header or claim gets the value ``b""``: all such requests share one bucket."""
    source = spec.source
    if source is KeySource.NONE:
        return None
    if source is KeySource.REMOTE_ADDRESS:
        return ex.down.origin_ip(ex.req).encode()
    if source is KeySource.HEADER:
        return ex.req.headers.get(spec.header, b"")
    auth = ex.auth
    return b"" if auth is None else claim_value(auth.claims, spec.claim)


def claim_value(claims: Mapping[str, object], path: tuple[str, ...]) -> bytes:
    """The claim at ``path`` as text (a list joined with ``,``), ``b""`` when absent."""
    value: object = claims
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return b""
        value = value[part]
    if isinstance(value, list):
        return ",".join(str(v) for v in value).encode()
    return str(value).encode()


def check(ex: LimitTarget, spec: RateLimitSpec, limiters: Mapping[str, Limiter]) -> bool:
    """Take a token for ``ex``; True when none was left and the request was answered 429."""
    limiter = limiters.get(spec.key)
    if limiter is None:
        return False  # a reload removed the limit while this request waited (a fault delay)
    now = ex.down.loop.time()
    bucket = limiter.bucket(descriptor_value(ex, spec), now)
    if bucket.take(now):
        limiter.stats.ok += 1
        return False
    limiter.stats.limited += 1
    reset = b"%d" % max(1, math.ceil(bucket.next_fill(now)))
    headers: HeaderList = [
        (b"retry-after", reset),
        (b"x-ratelimit-limit", b"%d" % spec.max_tokens),
        (b"x-ratelimit-remaining", b"0"),
        (b"x-ratelimit-reset", reset),
    ]
    ex.local_reply(429, ResponseFlag.RATE_LIMITED, BODY, headers)
    return True
