"""Envoy priority/panic/locality math (every vector of §2.1-§2.3) and the priority balancer."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from lb_testkit import make_hosts, random_keys

from gateway_core.snapshot import LbKind, LbPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.priority import (
    PriorityLoadBalancer,
    choose_priority,
    effective_locality_weight,
    evaluate_priorities,
    is_in_panic,
    locality_scheduler,
    priority_load,
    total_panic_load,
)

RR = LbPolicy(kind=LbKind.ROUND_ROBIN)


def _healthy_only(healthy_percent: list[int]) -> tuple[int, ...]:
    """Loads for levels of 100 hosts each with the given healthy counts."""
    levels = len(healthy_percent)
    return priority_load(healthy_percent, [0] * levels, [100] * levels)[0]


@pytest.mark.parametrize(
    ("healthy", "expected"),
    [
        ([100, 100], (100, 0)),
        ([72, 100], (100, 0)),
        ([71, 100], (99, 1)),
        ([50, 100], (70, 30)),
        ([25, 100], (35, 65)),
        ([0, 100], (0, 100)),
        ([72, 72], (100, 0)),
        ([71, 71], (99, 1)),
        ([50, 50], (70, 30)),
        ([25, 25], (50, 50)),
        ([71, 71, 100], (99, 1, 0)),
        ([50, 50, 100], (70, 30, 0)),
        ([25, 100, 100], (35, 65, 0)),
        ([25, 25, 100], (35, 35, 30)),
        ([25, 25, 20], (37, 35, 28)),
    ],
)
def test_priority_load_table(healthy: list[int], expected: tuple[int, ...]) -> None:
    """§2.1: the code column of Envoy's priority table (25/25/20 -> 37/35/28, not the doc's 36)."""
    assert _healthy_only(healthy) == expected


@pytest.mark.parametrize(
    ("healthy", "degraded", "expected"),
    [
        (100, 0, ((100,), (0,))),
        (71, 0, ((100,), (0,))),
        (71, 29, ((99,), (1,))),
        (25, 65, ((35,), (65,))),
        (5, 0, ((100,), (0,))),
    ],
)
def test_degraded_vectors(healthy: int, degraded: int, expected: tuple[tuple[int], ...]) -> None:
    """§2.1 degraded rows for one level of 100 hosts (healthy/degraded/unhealthy)."""
    assert priority_load([healthy], [degraded], [100]) == expected


def test_rounding_leftover_goes_to_first_healthy_level() -> None:
    """Envoy's comment: health 10/20/10, degraded 20/10/0 -> 16/28/14 healthy, 28/14/0 degraded."""
    loads = priority_load([10, 20, 10], [20, 10, 0], [100, 100, 100], overprovisioning=100)
    assert loads == ((16, 28, 14), (28, 14, 0))


def test_leftover_goes_to_first_degraded_level_without_healthy_ones() -> None:
    """No healthy level: the leftover lands on the first degraded level."""
    assert priority_load([0, 0], [30, 40], [100, 100]) == ((0, 0), (43, 57))


def test_doc_example_healths_twenty_and_thirty() -> None:
    """priority.rst: healths 20 and 30 (normalized total 50) -> 40% and 60%."""
    assert priority_load([20, 30], [0, 0], [100, 100], overprovisioning=100)[0] == (40, 60)


@pytest.mark.parametrize(
    ("healthy", "expected"), [(14, (100, 0)), (10, (100, 0)), (5, (50, 50)), (0, (0, 100))]
)
def test_seed_article_fourteen_hosts(healthy: int, expected: tuple[int, int]) -> None:
    """Seed 001: 14 hosts in zone 1 with 10, 5, 0 healthy against 14 healthy in zone 2."""
    assert priority_load([healthy, 14], [0, 0], [14, 14])[0] == expected


def test_no_availability_puts_nominal_load_on_level_zero() -> None:
    """Nothing healthy anywhere: level 0 nominally carries 100%."""
    assert priority_load([0, 0], [0, 0], [3, 3]) == ((100, 0), (0, 0))


def test_panic_needs_total_availability_below_100() -> None:
    """§2.2: with a healthy backup level nothing panics, however bad level 0 is."""
    result = evaluate_priorities([10, 100], [0, 0], [100, 100], panic_threshold=50)
    assert result.panic == (False, False)
    assert result.healthy_load == (14, 86)


def test_panic_eight_ninety_two() -> None:
    """§2.2: 5% / 65% healthy -> code gives 8/92 (doc 7/93); level 0 panics, level 1 does not."""
    result = evaluate_priorities([5, 65], [0, 0], [100, 100], panic_threshold=50)
    assert result.healthy_load == (8, 92)
    assert result.panic == (True, False)
    assert not result.total_panic


def test_total_panic_splits_by_host_count() -> None:
    """§2.2: 25%/25% -> both levels panic, load follows host counts (50/50 here)."""
    result = evaluate_priorities([25, 25], [0, 0], [100, 100], panic_threshold=50)
    assert result.total_panic
    assert result.healthy_load == (50, 50)
    uneven = evaluate_priorities([0, 1], [0, 0], [3, 7], panic_threshold=50)
    assert uneven.total_panic
    assert uneven.healthy_load == (30, 70)


def test_total_panic_leftover_to_first_non_empty_level() -> None:
    """100 * hosts // all leaves a remainder for the first level that has hosts."""
    assert total_panic_load([0, 1, 1, 1]) == (0, 34, 33, 33)
    assert total_panic_load([0, 0]) == (100, 0)


def test_panic_threshold_zero_never_panics() -> None:
    """Threshold 0 (Istio minHealthPercent default): no panic even with nothing healthy."""
    dead = evaluate_priorities([0, 0], [0, 0], [4, 4], panic_threshold=0)
    assert dead.panic == (False, False)
    assert dead.healthy_load == (100, 0)
    weak = evaluate_priorities([25, 25], [0, 0], [100, 100], panic_threshold=0)
    assert weak.panic == (False, False)
    assert weak.healthy_load == (50, 50)


@pytest.mark.parametrize(
    ("healthy", "degraded", "total", "threshold", "expected"),
    [
        (49, 0, 100, 50, True),
        (50, 0, 100, 50, False),
        (30, 20, 100, 50, False),
        (0, 0, 0, 50, True),
        (0, 0, 0, 0, False),
    ],
)
def test_is_in_panic(
    healthy: int, degraded: int, total: int, threshold: int, expected: bool
) -> None:
    """A level panics when healthy% + degraded% < threshold; an empty level counts as 0%."""
    assert is_in_panic(healthy, degraded, total, threshold) is expected


def test_choose_priority_walks_cumulative_loads() -> None:
    """Loads 37/35/28: draws 1-37 -> P0, 38-72 -> P1, 73-100 -> P2; then degraded loads."""
    loads = (37, 35, 28)
    chosen = Counter(choose_priority(d, loads, (0, 0, 0))[0] for d in range(1, 101))
    assert chosen == {0: 37, 1: 35, 2: 28}
    assert choose_priority(37, loads, (0, 0, 0)) == (0, False)
    assert choose_priority(38, loads, (0, 0, 0)) == (1, False)
    assert choose_priority(36, (35, 0), (65, 0)) == (0, True)


@pytest.mark.parametrize(
    ("x_healthy", "share"),
    [(100, 33.33), (70, 32.89), (69, 32.57), (50, 25.93), (25, 14.89), (0, 0.0)],
)
def test_locality_effective_weight_vectors(x_healthy: int, share: float) -> None:
    """§2.3: X weight 1 (x% healthy) vs Y weight 2 (healthy) -> X's share of traffic."""
    x = effective_locality_weight(1, x_healthy, 100)
    y = effective_locality_weight(2, 100, 100)
    assert round(100 * x / (x + y), 2) == share


def test_locality_scheduler_follows_effective_weights() -> None:
    """EDF over 0.98 and 2.0 gives X 32.89% of 10,000 picks (+-1 pick)."""
    scheduler = locality_scheduler([effective_locality_weight(1, 70, 100), 2.0])
    assert scheduler is not None
    counts = Counter(scheduler.pick() for _ in range(10_000))
    assert abs(counts[0] - 3288.6) <= 1
    assert locality_scheduler([0.0, 0.0]) is None


def _two_zones(healthy_in_zone1: int, size: int = 14) -> list[Host]:
    zone1 = make_hosts(size, "10.1.0.", priority=0)
    zone2 = make_hosts(size, "10.2.0.", priority=1)
    for host in zone1[healthy_in_zone1:]:
        host.hc_failed = True
    return zone1 + zone2


def _level_shares(lb: PriorityLoadBalancer, picks: int = 10_000) -> Counter[int]:
    counts: Counter[int] = Counter()
    for _ in range(picks):
        host = lb.choose_host(LbContext())
        assert host is not None
        counts[host.priority] += 1
    return counts


@pytest.mark.parametrize(("healthy", "zone1_percent"), [(14, 100), (10, 100), (5, 50), (0, 0)])
def test_seed_article_failover_picks(healthy: int, zone1_percent: int) -> None:
    """Seed 001 end to end: 10,000 picks match the computed loads within 2 points."""
    lb = PriorityLoadBalancer(
        RR, _two_zones(healthy), panic_threshold=0, locality_weighted=False, rng=random.Random(1)
    )
    shares = _level_shares(lb)
    assert abs(100 * shares[0] / 10_000 - zone1_percent) <= 2


def test_three_level_loads_match_picks() -> None:
    """25/25/20 healthy of 100 each -> 37/35/28 within 2 points, never an unhealthy host."""
    hosts: list[Host] = []
    for level, healthy in enumerate((25, 25, 20)):
        group = make_hosts(100, f"10.{level}.0.", priority=level)
        for bad in group[healthy:]:
            bad.ejected = True
        hosts += group
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=0, locality_weighted=False, rng=random.Random(2)
    )
    counts: Counter[int] = Counter()
    for _ in range(10_000):
        host = lb.choose_host(LbContext())
        assert host is not None
        assert host.healthy
        counts[host.priority] += 1
    for level, expected in enumerate((37, 35, 28)):
        assert abs(counts[level] / 100 - expected) <= 2


def test_panic_level_uses_all_hosts() -> None:
    """Total panic (threshold 50, 25% healthy everywhere): unhealthy hosts are picked too."""
    hosts = _two_zones(3, size=12)
    for host in hosts[12:][3:]:
        host.hc_failed = True
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=50, locality_weighted=False, rng=random.Random(3)
    )
    picked = [lb.choose_host(LbContext()) for _ in range(1000)]
    assert any(h is not None and not h.healthy for h in picked)
    state = lb.state()
    assert state.total_panic
    assert [lv.panic for lv in state.levels] == [True, True]


def test_no_healthy_host_without_panic_is_none() -> None:
    """Threshold 0 and every host down: "no healthy upstream" (None)."""
    hosts = make_hosts(3)
    for host in hosts:
        host.ejected = True
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=0, locality_weighted=False, rng=random.Random(0)
    )
    assert lb.choose_host(LbContext()) is None
    assert (
        PriorityLoadBalancer(
            RR, [], panic_threshold=0, locality_weighted=False, rng=random.Random(0)
        ).choose_host(LbContext())
        is None
    )


def test_update_recomputes_after_health_change() -> None:
    """Marking hosts unhealthy and calling update() moves traffic to the next level."""
    hosts = _two_zones(14)
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=0, locality_weighted=False, rng=random.Random(4)
    )
    assert _level_shares(lb, 500) == {0: 500}
    for host in hosts[:14]:
        host.ejected = True
    lb.update()
    assert _level_shares(lb, 500) == {1: 500}
    lb.update(hosts[14:])
    assert [level.hosts for level in lb.state().levels] == [0, 14]


def test_state_reports_levels() -> None:
    """state() lists per level: hosts, healthy, availability, load, panic and bad hosts."""
    hosts = _two_zones(5)
    hosts[0].hc_failed = False
    hosts[0].ejected = True
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=0, locality_weighted=False, rng=random.Random(0)
    )
    level0, level1 = lb.state().levels
    assert (level0.hosts, level0.healthy, level0.availability, level0.load) == (14, 4, 40, 40)
    assert level0.ejected == ("10.1.0.0:8080",)
    assert len(level0.hc_failed) == 9
    assert not level0.panic
    assert (level1.healthy, level1.load, level1.degraded_load) == (14, 60, 0)


def test_hash_key_chooses_the_priority() -> None:
    """Hash policies pick the level with hash % 100 + 1, so a key sticks to one level."""
    policy = LbPolicy(kind=LbKind.RING_HASH)
    lb = PriorityLoadBalancer(
        policy, _two_zones(5), panic_threshold=0, locality_weighted=False, rng=random.Random(0)
    )
    for key in random_keys(300):
        host = lb.choose_host(LbContext(hash_key=key))
        assert host is not None
        assert host.priority == (0 if key % 100 + 1 <= 50 else 1)
        assert lb.choose_host(LbContext(hash_key=key)) is host


def _distribute_hosts() -> list[Host]:
    hosts = []
    for name, weight in (("region1/zone1", 70), ("region1/zone2", 20), ("region3/zone4", 10)):
        hosts += make_hosts(2, f"10.{weight}.0.", locality=name, lw=weight)
    return hosts


def test_locality_weights_split_traffic() -> None:
    """Istio distribute task: locality weights 70/20/10 give that split of 10,000 picks."""
    lb = PriorityLoadBalancer(
        RR, _distribute_hosts(), panic_threshold=0, locality_weighted=True, rng=random.Random(5)
    )
    counts = Counter(
        str(h.locality) for h in (lb.choose_host(LbContext()) for _ in range(10_000)) if h
    )
    assert counts == {"region1/zone1": 7000, "region1/zone2": 2000, "region3/zone4": 1000}


def test_locality_weights_shrink_with_health() -> None:
    """X (weight 1, 70% healthy) vs Y (weight 2): X gets 32.89% +- 2 points."""
    x = make_hosts(10, "10.1.0.", locality="r/x", lw=1)
    y = make_hosts(10, "10.2.0.", locality="r/y", lw=2)
    for host in x[7:]:
        host.ejected = True
    lb = PriorityLoadBalancer(
        RR, x + y, panic_threshold=0, locality_weighted=True, rng=random.Random(6)
    )
    counts = Counter(
        str(h.locality) for h in (lb.choose_host(LbContext()) for _ in range(10_000)) if h
    )
    assert abs(counts["r/x"] / 100 - 32.89) <= 2


def test_locality_weighted_hashing_folds_weights_into_the_table() -> None:
    """Ring hash with locality weights 3:1 sends ~75% of random keys to the heavy locality."""
    heavy = make_hosts(2, "10.1.0.", locality="r/a", lw=3)
    light = make_hosts(4, "10.2.0.", locality="r/b", lw=1)
    policy = LbPolicy(kind=LbKind.RING_HASH)
    lb = PriorityLoadBalancer(
        policy, heavy + light, panic_threshold=0, locality_weighted=True, rng=random.Random(0)
    )
    counts = Counter(
        str(h.locality)
        for h in (lb.choose_host(LbContext(hash_key=k)) for k in random_keys(10_000))
        if h
    )
    assert abs(counts["r/a"] / 10_000 - 0.75) < 0.05


def test_excluded_hosts_pass_through_to_the_inner_balancer() -> None:
    """Retries skip tried hosts inside the chosen level."""
    hosts = make_hosts(3)
    lb = PriorityLoadBalancer(
        RR, hosts, panic_threshold=50, locality_weighted=False, rng=random.Random(0)
    )
    ctx = LbContext(excluded=frozenset({hosts[0].key, hosts[1].key}))
    assert {lb.choose_host(ctx) for _ in range(10)} == {hosts[2]}
