"""Weighted round robin: exact cycle counts, smoothness, exclusion."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from lb_testkit import longest_run, make_host, make_hosts, picks, tally

from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.round_robin import RoundRobinLoadBalancer


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_weights_three_to_one_give_exact_counts(seed: int) -> None:
    """Weights 3:1 give exactly 300/100 picks in 400, whatever the random start."""
    lb = RoundRobinLoadBalancer(
        [make_host("a", weight=3), make_host("b", weight=1)], random.Random(seed)
    )
    assert tally(lb, 400) == {"a": 300, "b": 100}


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_heavy_host_never_bursts(seed: int) -> None:
    """The 3:1 heavy host runs at most ceil(3/1) = 3 times in a row; the light one never twice."""
    lb = RoundRobinLoadBalancer(
        [make_host("a", weight=3), make_host("b", weight=1)], random.Random(seed)
    )
    sequence = picks(lb, 400)
    assert longest_run(sequence, "a") == 3
    assert longest_run(sequence, "b") == 1


def test_three_weights_exact_over_cycles() -> None:
    """Weights 5:2:1 give exactly 500/200/100 picks in 800."""
    hosts = [make_host("a", weight=5), make_host("b", weight=2), make_host("c", weight=1)]
    lb = RoundRobinLoadBalancer(hosts, random.Random(5))
    assert tally(lb, 800) == {"a": 500, "b": 200, "c": 100}


def test_equal_weights_rotate() -> None:
    """Equal weights visit every host once per round, in a fixed rotation."""
    lb = RoundRobinLoadBalancer(make_hosts(3), random.Random(0))
    sequence = picks(lb, 9)
    assert Counter(sequence) == {"10.0.0.0": 3, "10.0.0.1": 3, "10.0.0.2": 3}
    assert sequence[:3] == sequence[3:6] == sequence[6:9]


def test_excluded_hosts_are_skipped() -> None:
    """A retry never lands on a host it already tried while another host is left."""
    hosts = [make_host("a", weight=3), make_host("b", weight=1), make_host("c", weight=1)]
    lb = RoundRobinLoadBalancer(hosts, random.Random(0))
    ctx = LbContext(excluded=frozenset({hosts[0].key}))
    assert set(tally(lb, 50, ctx)) == {"b", "c"}


def test_all_excluded_still_returns_a_host() -> None:
    """When every host was tried, retrying one of them beats failing the request."""
    hosts = make_hosts(2)
    lb = RoundRobinLoadBalancer(hosts, random.Random(0))
    ctx = LbContext(excluded=frozenset(h.key for h in hosts))
    assert lb.choose_host(ctx) in hosts


def test_no_hosts_returns_none() -> None:
    """An empty candidate set means no host."""
    assert RoundRobinLoadBalancer([], random.Random(0)).choose_host(LbContext()) is None
