"""Weighted random with an injected generator."""

from __future__ import annotations

import random

from lb_testkit import ScriptedRandom, make_host, make_hosts, picks, tally

from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.random_lb import RandomLoadBalancer


def test_cumulative_weights_map_draws_to_hosts() -> None:
    """Weights 3 and 1: draws 0..2 pick the first host, draw 3 the second."""
    hosts = [make_host("a", weight=3), make_host("b", weight=1)]
    lb = RandomLoadBalancer(hosts, ScriptedRandom([0, 2, 3]))
    assert picks(lb, 3) == ["a", "a", "b"]


def test_weights_shape_the_distribution() -> None:
    """Weights 3:1 give about 75/25 over 10,000 seeded picks."""
    hosts = [make_host("a", weight=3), make_host("b", weight=1)]
    counts = tally(RandomLoadBalancer(hosts, random.Random(11)), 10_000)
    assert abs(counts["a"] / 10_000 - 0.75) < 0.02


def test_same_seed_same_sequence() -> None:
    """Randomness is injected: equal seeds give equal pick sequences."""
    first = picks(RandomLoadBalancer(make_hosts(5), random.Random(4)), 50)
    second = picks(RandomLoadBalancer(make_hosts(5), random.Random(4)), 50)
    assert first == second
    assert len(set(first)) == 5


def test_excluded_hosts_are_not_drawn() -> None:
    """A retry draws among the hosts not tried yet, weights still applying."""
    hosts = [make_host("a", weight=5), make_host("b", weight=3), make_host("c", weight=1)]
    ctx = LbContext(excluded=frozenset({hosts[0].key}))
    counts = tally(RandomLoadBalancer(hosts, random.Random(2)), 4000, ctx)
    assert set(counts) == {"b", "c"}
    assert abs(counts["b"] / 4000 - 0.75) < 0.03


def test_all_excluded_still_returns_a_host() -> None:
    """Every host tried: one of them is retried rather than failing."""
    hosts = make_hosts(2)
    ctx = LbContext(excluded=frozenset(h.key for h in hosts))
    assert RandomLoadBalancer(hosts, random.Random(0)).choose_host(ctx) in hosts


def test_no_hosts_returns_none() -> None:
    """An empty candidate set means no host."""
    assert RandomLoadBalancer([], random.Random(0)).choose_host(LbContext()) is None
