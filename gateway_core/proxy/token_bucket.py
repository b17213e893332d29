"""Data path: the state of local rate limits: token buckets, limiters and their registry.

A ``RateLimitSpec`` in a filter chain names its limiter by ``spec.key``; the limiters live in
``RateLimits``, which the process keeps across reloads (``publish``): a limit whose key is
unchanged keeps its buckets. Time is the event loop's clock, passed in by the caller; a bucket
is refilled lazily from the time of its last fill, so there is no timer per bucket or request.

With ``--workers N`` every worker process has its own buckets, each with a share of the limit
(``worker_share``): ``maxTokens`` is split rounding up, and the fill rate is kept exact by
stretching each worker's interval, so N workers admit at most the configured rate and a burst
at most N-1 tokens above ``maxTokens``.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from gateway_core.routing.ratelimit import RateLimitSpec

MAX_KEY_BYTES = 128
"""Longer descriptor values are kept as a 16-byte digest, so ``maxKeys`` bounds memory."""


@dataclass(frozen=True, slots=True)
class BucketShape:
    max_tokens: int
    tokens_per_fill: int
    fill_interval: float


def worker_share(
    max_tokens: int, tokens_per_fill: int, interval: float, workers: int
) -> BucketShape:
    """One worker's bucket when ``workers`` processes share a limit: ``ceil(max/N)`` tokens,
    ``ceil(fill/N)`` per fill, and the interval stretched so that N workers together refill
    exactly ``tokens_per_fill`` per ``interval``."""
    if workers <= 1:
        return BucketShape(max_tokens, tokens_per_fill, interval)
    per_fill = math.ceil(tokens_per_fill / workers)
    return BucketShape(
        max_tokens=math.ceil(max_tokens / workers),
        tokens_per_fill=per_fill,
        fill_interval=interval * workers * per_fill / tokens_per_fill,
    )


class TokenBucket:
    """Starts full; gains ``tokens_per_fill`` at each whole ``fill_interval`` since the last
    fill, up to ``max_tokens``; each request takes one token."""

    __slots__ = ("last_fill", "shape", "tokens")

    def __init__(self, shape: BucketShape, now: float) -> None:
        self.shape = shape
        self.tokens = shape.max_tokens
        self.last_fill = now

    def take(self, now: float) -> bool:
        shape = self.shape
        elapsed = now - self.last_fill
        if elapsed >= shape.fill_interval:
            fills = int(elapsed // shape.fill_interval)
            self.tokens = min(shape.max_tokens, self.tokens + fills * shape.tokens_per_fill)
            self.last_fill += fills * shape.fill_interval
        if self.tokens > 0:
            self.tokens -= 1
            return True
        return False

    def next_fill(self, now: float) -> float:
        """Seconds until the next fill."""
        return max(0.0, self.last_fill + self.shape.fill_interval - now)


@dataclass(slots=True)
class LimitStats:
    ok: int = 0
    limited: int = 0


class Limiter:
    """The buckets of one limit: one, or one per descriptor value in a least-recently-used
    map of at most ``max_keys`` (the oldest is dropped, and starts full if it comes back)."""

    __slots__ = ("buckets", "shape", "single", "spec", "stats")

    def __init__(self, spec: RateLimitSpec, workers: int, stats: LimitStats) -> None:
        self.spec = spec
        self.shape = worker_share(
            spec.max_tokens, spec.tokens_per_fill, spec.fill_interval, workers
        )
        self.stats = stats
        self.single: TokenBucket | None = None
        self.buckets: OrderedDict[bytes, TokenBucket] = OrderedDict()

    def bucket(self, value: bytes | None, now: float) -> TokenBucket:
        if value is None:
            if self.single is None:
                self.single = TokenBucket(self.shape, now)
            return self.single
        if len(value) > MAX_KEY_BYTES:
            value = hashlib.blake2b(value, digest_size=16).digest()
        buckets = self.buckets
        found = buckets.get(value)
        if found is not None:
            buckets.move_to_end(value)
            return found
        created = buckets[value] = TokenBucket(self.shape, now)
        if len(buckets) > self.spec.max_keys:
            buckets.popitem(last=False)
        return created

    @property
    def keys(self) -> int:
        return len(self.buckets)


class RateLimits:
    """Every limiter of the process, by ``RateLimitSpec.key``, kept across reloads."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)
        self.limiters: dict[str, Limiter] = {}
        self.stats: dict[str, LimitStats] = {}
        """Counters by limit name: they outlive a change of the limit's parameters."""

    def publish(self, specs: Iterable[RateLimitSpec]) -> dict[str, Limiter]:
        """The limiters of a new configuration: the same object for an unchanged key, a new
        one (full buckets) otherwise; limits no longer configured are dropped."""
        old = self.limiters
        new: dict[str, Limiter] = {}
        for spec in specs:
            if spec.key in new:
                continue
            limiter = old.get(spec.key)
            if limiter is None:
                stats = self.stats.setdefault(spec.name, LimitStats())
                limiter = Limiter(spec, self.workers, stats)
            new[spec.key] = limiter
        self.limiters = new
        return new

    def samples(self) -> list[tuple[str, int, int, int]]:
        """``(limit, ok, rate_limited, descriptor keys held)`` for the metrics."""
        keys: dict[str, int] = {}
        for limiter in self.limiters.values():
            keys[limiter.spec.name] = keys.get(limiter.spec.name, 0) + limiter.keys
        return [(n, s.ok, s.limited, keys.get(n, 0)) for n, s in sorted(self.stats.items())]
