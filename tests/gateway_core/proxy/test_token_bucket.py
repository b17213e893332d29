"""Tests for gateway_core/proxy/token_bucket.py: the bucket on a fake clock, the per-worker
share of a limit, the bounded descriptor map and the registry that keeps buckets across
reloads."""

from __future__ import annotations

import math

import pytest

from gateway_core.proxy.token_bucket import (
    MAX_KEY_BYTES,
    BucketShape,
    Limiter,
    LimitStats,
    RateLimits,
    TokenBucket,
    worker_share,
)
from gateway_core.routing.ratelimit import KeySource, RateLimitSpec


def spec(**kw: object) -> RateLimitSpec:
    base: dict[str, object] = {
        "name": "default/rl",
        "max_tokens": 3,
        "tokens_per_fill": 1,
        "fill_interval": 1.0,
    }
    base.update(kw)
    return RateLimitSpec(**base)  # type: ignore[arg-type]


def drain(bucket: TokenBucket, now: float) -> int:
    """Take tokens at ``now`` until refused; how many were taken (bounded)."""
    for taken in range(10_000):
        if not bucket.take(now):
            return taken
    raise AssertionError("the bucket never ran out")


def test_bucket_starts_full_and_refuses_when_empty() -> None:
    bucket = TokenBucket(BucketShape(3, 1, 1.0), now=10.0)
    assert drain(bucket, 10.0) == 3
    assert not bucket.take(10.5)
    assert bucket.next_fill(10.5) == pytest.approx(0.5)


def test_bucket_fills_per_whole_interval_up_to_max() -> None:
    bucket = TokenBucket(BucketShape(5, 2, 1.0), now=0.0)
    assert drain(bucket, 0.0) == 5
    assert drain(bucket, 0.999) == 0  # no fill before a whole interval
    assert drain(bucket, 1.0) == 2  # one fill: tokensPerFill
    assert drain(bucket, 3.5) == 4  # two more fills
    assert bucket.next_fill(3.5) == pytest.approx(0.5)  # fills keep their phase
    assert drain(bucket, 100.0) == 5  # many fills, capped at maxTokens


def test_bucket_does_not_bank_tokens_beyond_max_while_idle() -> None:
    bucket = TokenBucket(BucketShape(2, 1, 0.1), now=0.0)
    bucket.take(0.0)
    assert drain(bucket, 60.0) == 2


def test_share_of_one_worker_is_the_limit() -> None:
    assert worker_share(10, 5, 1.0, 1) == BucketShape(10, 5, 1.0)


@pytest.mark.parametrize(
    ("max_tokens", "per_fill", "workers", "expected"),
    [
        (10, 10, 4, BucketShape(3, 3, 1.2)),
        (1, 1, 4, BucketShape(1, 1, 4.0)),
        (100, 7, 3, BucketShape(34, 3, 3 * 3 / 7)),
        (8, 8, 8, BucketShape(1, 1, 1.0)),
    ],
)
def test_share_of_n_workers(
    max_tokens: int, per_fill: int, workers: int, expected: BucketShape
) -> None:
    share = worker_share(max_tokens, per_fill, 1.0, workers)
    assert share.max_tokens == expected.max_tokens
    assert share.tokens_per_fill == expected.tokens_per_fill
    assert share.fill_interval == pytest.approx(expected.fill_interval)
    # Together the workers refill exactly the configured rate ...
    assert workers * share.tokens_per_fill / share.fill_interval == pytest.approx(per_fill)
    # ... and burst at most N-1 tokens above maxTokens (rounding up).
    assert max_tokens <= workers * share.max_tokens <= max_tokens + workers - 1


@pytest.mark.parametrize("workers", [1, 2, 3, 4, 7])
def test_workers_together_admit_the_configured_limit(workers: int) -> None:
    """N workers under a steady overload for 20 intervals: the requests they admit together
    are the limit's burst plus its fill rate, within rounding."""
    max_tokens, per_fill, interval = 10, 4, 1.0
    share = worker_share(max_tokens, per_fill, interval, workers)
    buckets = [TokenBucket(share, 0.0) for _ in range(workers)]
    admitted = 0
    steps = 2000
    for step in range(steps + 1):  # every worker sees a request every 10 ms
        now = step * 0.01
        admitted += sum(1 for b in buckets if b.take(now))
    configured = max_tokens + per_fill * 20
    assert configured - per_fill <= admitted <= configured + (workers - 1) + per_fill


def test_limiter_without_descriptor_has_one_bucket() -> None:
    limiter = Limiter(spec(), 1, LimitStats())
    assert limiter.bucket(None, 0.0) is limiter.bucket(None, 5.0)
    assert limiter.keys == 0


def test_descriptor_buckets_are_a_bounded_lru() -> None:
    limiter = Limiter(spec(source=KeySource.HEADER, header=b"x-user", max_keys=3), 1, LimitStats())
    a = limiter.bucket(b"a", 0.0)
    limiter.bucket(b"b", 0.0)
    limiter.bucket(b"c", 0.0)
    assert limiter.bucket(b"a", 0.0) is a  # a used again: b is now the oldest
    limiter.bucket(b"d", 0.0)
    assert limiter.keys == 3
    assert set(limiter.buckets) == {b"a", b"c", b"d"}
    assert limiter.bucket(b"a", 0.0) is a


def test_many_distinct_values_never_grow_past_max_keys() -> None:
    limiter = Limiter(spec(source=KeySource.REMOTE_ADDRESS, max_keys=50), 1, LimitStats())
    for i in range(5000):
        limiter.bucket(b"10.0.%d.%d" % (i // 256, i % 256), float(i))
    assert limiter.keys == 50


def test_long_values_are_kept_as_a_digest() -> None:
    limiter = Limiter(spec(source=KeySource.HEADER, header=b"x-k"), 1, LimitStats())
    long_value = b"x" * 10_000
    bucket = limiter.bucket(long_value, 0.0)
    assert limiter.bucket(long_value, 0.0) is bucket
    assert all(len(k) <= MAX_KEY_BYTES for k in limiter.buckets)
    assert limiter.bucket(b"x" * 9_999, 0.0) is not bucket


def test_a_workers_limiter_uses_its_share() -> None:
    limiter = Limiter(spec(max_tokens=10, tokens_per_fill=10), 4, LimitStats())
    assert drain(limiter.bucket(None, 0.0), 0.0) == math.ceil(10 / 4)


def test_publish_keeps_buckets_of_an_unchanged_limit() -> None:
    limits = RateLimits()
    first = limits.publish([spec()])
    bucket = first[spec().key].bucket(None, 0.0)
    drain(bucket, 0.0)
    again = limits.publish([spec(), spec(name="default/other")])
    assert again[spec().key] is first[spec().key]
    assert not again[spec().key].bucket(None, 0.1).take(0.1)  # still empty after the reload


def test_publish_starts_a_changed_limit_full_and_drops_removed_ones() -> None:
    limits = RateLimits()
    old = limits.publish([spec()])[spec().key]
    drain(old.bucket(None, 0.0), 0.0)
    old.stats.limited += 1
    changed = spec(max_tokens=5)
    new = limits.publish([changed])
    assert set(new) == {changed.key}
    assert drain(new[changed.key].bucket(None, 0.1), 0.1) == 5
    # The counters belong to the limit's name: a changed limit keeps counting.
    assert new[changed.key].stats is old.stats
    assert limits.samples() == [("default/rl", 0, 1, 0)]


def test_workers_setting_is_applied_to_every_limiter() -> None:
    limits = RateLimits(workers=3)
    limiter = limits.publish([spec(max_tokens=9, tokens_per_fill=3)])[
        spec(max_tokens=9, tokens_per_fill=3).key
    ]
    assert limiter.shape == BucketShape(3, 1, 1.0)


def test_spec_key_names_every_parameter() -> None:
    keys = {
        spec().key,
        spec(max_tokens=4).key,
        spec(tokens_per_fill=2).key,
        spec(fill_interval=2.0).key,
        spec(source=KeySource.HEADER, header=b"a").key,
        spec(source=KeySource.HEADER, header=b"b").key,
        spec(source=KeySource.CLAIM, claim=("sub",)).key,
        spec(max_keys=5).key,
        spec(name="other/rl").key,
    }
    assert len(keys) == 9
    assert spec().key == spec().key
