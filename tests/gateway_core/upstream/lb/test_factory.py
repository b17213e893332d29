"""The load-balancer registry."""

from __future__ import annotations

import random

import pytest
from lb_testkit import make_host, make_hosts, tally

from gateway_core.snapshot import LbKind, LbPolicy
from gateway_core.upstream.lb.factory import build_load_balancer, build_weighted_hash_balancer
from gateway_core.upstream.lb.least_request import LeastRequestLoadBalancer
from gateway_core.upstream.lb.maglev import MaglevLoadBalancer
from gateway_core.upstream.lb.random_lb import RandomLoadBalancer
from gateway_core.upstream.lb.ring_hash import RingHashLoadBalancer
from gateway_core.upstream.lb.round_robin import RoundRobinLoadBalancer

EXPECTED = {
    LbKind.ROUND_ROBIN: RoundRobinLoadBalancer,
    LbKind.LEAST_REQUEST: LeastRequestLoadBalancer,
    LbKind.RANDOM: RandomLoadBalancer,
    LbKind.RING_HASH: RingHashLoadBalancer,
    LbKind.MAGLEV: MaglevLoadBalancer,
    LbKind.PASSTHROUGH: RandomLoadBalancer,
}


@pytest.mark.parametrize("kind", list(LbKind))
def test_every_kind_has_a_builder(kind: LbKind) -> None:
    """Each LbKind builds its balancer (PASSTHROUGH balances as RANDOM) that returns hosts."""
    lb = build_load_balancer(
        LbPolicy(kind=kind, maglev_table_size=251), make_hosts(3), random.Random(0)
    )
    assert type(lb) is EXPECTED[kind]
    assert set(tally(lb, 60)) == {"10.0.0.0", "10.0.0.1", "10.0.0.2"}


def test_round_robin_three_to_one_through_the_factory() -> None:
    """Weights 3:1 give exactly 3:1 over a full cycle."""
    hosts = [make_host("a", weight=3), make_host("b", weight=1)]
    lb = build_load_balancer(LbPolicy(kind=LbKind.ROUND_ROBIN), hosts, random.Random(0))
    assert tally(lb, 400) == {"a": 300, "b": 100}


def test_policy_sizes_reach_the_hash_tables() -> None:
    """The policy's minimum ring size reaches the ring builder."""
    lb = build_load_balancer(
        LbPolicy(kind=LbKind.RING_HASH, ring_size=2048), make_hosts(2), random.Random(0)
    )
    assert isinstance(lb, RingHashLoadBalancer)
    assert lb.ring_size == 2048


def test_weighted_hash_balancer_only_for_hash_kinds() -> None:
    """Explicit weights are for ring hash and maglev; other kinds are refused."""
    hosts = make_hosts(2)
    ring = build_weighted_hash_balancer(
        LbPolicy(kind=LbKind.RING_HASH), hosts, [1.0, 3.0], random.Random(0)
    )
    assert isinstance(ring, RingHashLoadBalancer)
    assert ring.ring_size == 1024
    with pytest.raises(ValueError, match="not a hashing"):
        build_weighted_hash_balancer(
            LbPolicy(kind=LbKind.ROUND_ROBIN), hosts, [1.0, 1.0], random.Random(0)
        )
