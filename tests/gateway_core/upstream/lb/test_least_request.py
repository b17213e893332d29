"""Least request: power of two choices, weighted EDF by active requests."""

from __future__ import annotations

import random

from lb_testkit import ScriptedRandom, make_host, make_hosts, tally

from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.least_request import LeastRequestLoadBalancer


def test_two_choices_keep_the_less_loaded_sample() -> None:
    """Of the two sampled hosts the one with fewer active requests wins."""
    hosts = make_hosts(3)
    hosts[0].active_requests = 4
    hosts[1].active_requests = 1
    lb = LeastRequestLoadBalancer(hosts, ScriptedRandom([0, 1, 1, 0, 2, 0]))
    assert lb.choose_host(LbContext()) is hosts[1]
    assert lb.choose_host(LbContext()) is hosts[1]
    assert lb.choose_host(LbContext()) is hosts[2]


def test_ties_keep_the_first_sample() -> None:
    """Equal active requests keep the first sampled host."""
    hosts = make_hosts(2)
    lb = LeastRequestLoadBalancer(hosts, ScriptedRandom([1, 0]))
    assert lb.choose_host(LbContext()) is hosts[1]


def test_busy_host_only_chosen_when_sampled_twice() -> None:
    """With one busy host of two, P2C picks it only when both samples hit it (~25%)."""
    hosts = make_hosts(2)
    hosts[0].active_requests = 10
    counts = tally(LeastRequestLoadBalancer(hosts, random.Random(3)), 4000)
    assert abs(counts["10.0.0.0"] / 4000 - 0.25) < 0.03


def test_weighted_idle_hosts_follow_weights_exactly() -> None:
    """Weights 2:1 with no requests in flight give exactly 200/100 picks in 300."""
    hosts = [make_host("a", weight=2), make_host("b", weight=1)]
    assert tally(LeastRequestLoadBalancer(hosts, random.Random(0)), 300) == {"a": 200, "b": 100}


def test_weighted_active_requests_scale_weight_down() -> None:
    """Weight 2 with 3 active requests ranks as 2/4 = 0.5 against an idle weight-1 host: 1:2."""
    hosts = [make_host("a", weight=2), make_host("b", weight=1)]
    hosts[0].active_requests = 3
    assert tally(LeastRequestLoadBalancer(hosts, random.Random(0)), 300) == {"a": 100, "b": 200}


def test_excluded_hosts_are_not_sampled() -> None:
    """Retries sample only hosts not tried yet, in both modes."""
    equal = make_hosts(3)
    ctx = LbContext(excluded=frozenset({equal[0].key}))
    assert "10.0.0.0" not in tally(LeastRequestLoadBalancer(equal, random.Random(1)), 100, ctx)
    weighted = [make_host("a", weight=3), make_host("b", weight=1)]
    ctx = LbContext(excluded=frozenset({weighted[0].key}))
    assert tally(LeastRequestLoadBalancer(weighted, random.Random(1)), 20, ctx) == {"b": 20}


def test_no_hosts_returns_none() -> None:
    """An empty candidate set means no host."""
    assert LeastRequestLoadBalancer([], random.Random(0)).choose_host(LbContext()) is None
