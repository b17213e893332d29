"""Maglev: table filling by weight, minimal disruption, retries."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from lb_testkit import make_host, make_hosts, random_keys

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.hash_key import HASH_MASK
from gateway_core.upstream.lb.maglev import MaglevLoadBalancer, build_table, is_prime

# Maglev trades a little disruption for balance: measured moves stay close to 1/N, and this
# much above it is tolerated.
TOLERANCE = 0.04


def _owners(lb: MaglevLoadBalancer, keys: list[int]) -> list[Host]:
    out = []
    for key in keys:
        host = lb.choose_host(LbContext(hash_key=key))
        assert host is not None
        out.append(host)
    return out


def test_table_size_must_be_prime() -> None:
    """65537 and 251 are accepted; 65536 is rejected like Istio's validation."""
    assert is_prime(65537)
    assert is_prime(251)
    assert not is_prime(65536)
    assert not is_prime(1)
    with pytest.raises(ValueError, match="prime"):
        MaglevLoadBalancer(make_hosts(2), random.Random(0), table_size=65536)


def test_equal_weights_fill_table_evenly() -> None:
    """10 equal hosts take one slot per round: 65537 slots -> 6553 or 6554 each."""
    counts = Counter(build_table(make_hosts(10), [1.0] * 10, 65537))
    assert sum(counts.values()) == 65537
    assert sorted(counts.values()) == [6553] * 3 + [6554] * 7


def test_weights_one_to_three_fill_proportionally() -> None:
    """Weights 1:3: the light host takes a slot every third round -> ~1/4 of the table."""
    hosts = [make_host("a", weight=1), make_host("b", weight=3)]
    counts = Counter(build_table(hosts, [1.0, 3.0], 65537))
    assert abs(counts[0] - 65537 / 4) <= 2


def test_removing_one_host_moves_about_one_tenth() -> None:
    """Removing 1 of 10 hosts moves at most 1/10 + tolerance of 10,000 keys."""
    hosts = make_hosts(10)
    keys = random_keys(10_000)
    before = _owners(MaglevLoadBalancer(hosts, random.Random(0)), keys)
    after = _owners(MaglevLoadBalancer(hosts[:5] + hosts[6:], random.Random(0)), keys)
    moved = sum(1 for b, a in zip(before, after, strict=True) if a is not b)
    assert sum(1 for b in before if b is hosts[5]) <= moved <= (1 / 10 + TOLERANCE) * len(keys)


def test_adding_one_host_moves_about_one_eleventh() -> None:
    """Adding an 11th host moves at most 1/11 + tolerance of 10,000 keys."""
    hosts = make_hosts(11)
    keys = random_keys(10_000)
    before = _owners(MaglevLoadBalancer(hosts[:10], random.Random(0)), keys)
    after = _owners(MaglevLoadBalancer(hosts, random.Random(0)), keys)
    moved = sum(1 for b, a in zip(before, after, strict=True) if a is not b)
    assert sum(1 for a in after if a is hosts[10]) <= moved <= (1 / 11 + TOLERANCE) * len(keys)


def test_attempt_flips_the_hash_like_envoy() -> None:
    """attempt n looks up ``hash ^ (2**64 - n)``: the same as attempt 0 for that hash."""
    lb = MaglevLoadBalancer(make_hosts(7), random.Random(0), table_size=251)
    for key in random_keys(50):
        flipped = key ^ ((HASH_MASK + 1 - 2) & HASH_MASK)
        assert lb.choose_host(LbContext(hash_key=key, attempt=2)) is lb.choose_host(
            LbContext(hash_key=flipped)
        )


def test_excluded_hosts_are_skipped_by_further_attempts() -> None:
    """Tried hosts are avoided while others remain; all tried -> the plain lookup."""
    hosts = make_hosts(5)
    lb = MaglevLoadBalancer(hosts, random.Random(0), table_size=251)
    for key in random_keys(100):
        first = lb.choose_host(LbContext(hash_key=key))
        assert first is not None
        ctx = LbContext(hash_key=key, excluded=frozenset({first.key}))
        retry = lb.choose_host(ctx)
        assert retry is not None
        assert retry is not first
        assert lb.choose_host(ctx) is retry
    everything = LbContext(hash_key=3, excluded=frozenset(h.key for h in hosts))
    assert lb.choose_host(everything) is lb.choose_host(LbContext(hash_key=3))


def test_no_hash_key_picks_at_random() -> None:
    """Without a hash the pick is random over the table."""
    lb = MaglevLoadBalancer(make_hosts(5), random.Random(2), table_size=251)
    assert len({lb.choose_host(LbContext()) for _ in range(200)}) == 5


def test_no_hosts_returns_none() -> None:
    """An empty table means no host."""
    assert MaglevLoadBalancer([], random.Random(0)).choose_host(LbContext(hash_key=1)) is None
