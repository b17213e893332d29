"""Data path: Envoy priority levels, panic mode and locality weighting, and the balancer on top.

The module functions are Envoy's integer math (``load_balancer_impl.cc``), pure and exact:

* availability of a level ``health(P) = min(100, 140 * healthy // total)`` (overprovisioning
  factor 1.4 written as 140), the same for degraded hosts;
* ``NTA = min(100, sum(health) + sum(degraded))``; each level gets
  ``min(remaining, health(P) * 100 // NTA)`` in order, degraded loads take what is left, and the
  rounding leftover goes to the first level with health > 0 (else the first with degraded > 0).

Worked example (the 25/25/20 row of the table in Envoy's "Priority levels" architecture
overview, computed exactly; the doc rounds it to 36/36/28): three levels of 100 hosts with 25,
25 and 20 healthy have health 35, 35, 28 and NTA 98; ``3500 // 98 = 35``, 35,
``2800 // 98 = 28`` leave 2, which go to level 0: loads 37/35/28. A level keeps all its
traffic while ``140 * healthy // total >= 100``, i.e. until fewer than ~71.4% of its hosts are
healthy (seed article: 10 of 14 healthy -> 100/0, 5 of 14 -> 50/50, none -> 0/100 against a
healthy second level).

Panic: only while NTA < 100, a level with ``healthy% + degraded% < threshold`` balances over all
its hosts; when every level panics, load follows host counts. Threshold 0 never panics.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from gateway_core.snapshot import LbPolicy, Locality
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext, LoadBalancer
from gateway_core.upstream.lb.factory import (
    HASH_KINDS,
    build_load_balancer,
    build_weighted_hash_balancer,
)
from gateway_core.upstream.lb.least_request import LeastRequestLoadBalancer
from gateway_core.upstream.lb.round_robin import RoundRobinLoadBalancer
from gateway_core.upstream.lb.selection import EdfScheduler
from gateway_core.upstream.lb.tables import Offload, TableBuilds

OVERPROVISIONING_FACTOR = 140
DEFAULT_PANIC_THRESHOLD = 50

Loads = tuple[int, ...]


def availability(count: int, total: int, overprovisioning: int = OVERPROVISIONING_FACTOR) -> int:
    """``min(100, overprovisioning * count // total)``; 0 for an empty level."""
    return min(100, overprovisioning * count // total) if total > 0 else 0


def priority_load(
    healthy: Sequence[int],
    degraded: Sequence[int],
    total: Sequence[int],
    overprovisioning: int = OVERPROVISIONING_FACTOR,
) -> tuple[Loads, Loads]:
    """Healthy and degraded traffic percent per level; together they sum to 100.

    With no available host anywhere level 0 nominally gets 100 (Envoy's choice; the level then
    has nothing to pick, unless panic mode applies, see ``evaluate_priorities``).
    """
    health = [availability(h, t, overprovisioning) for h, t in zip(healthy, total, strict=True)]
    degr = [availability(d, t, overprovisioning) for d, t in zip(degraded, total, strict=True)]
    levels = len(total)
    nta = min(100, sum(health) + sum(degr))
    if nta == 0:
        return _all_on_first(levels), (0,) * levels
    healthy_load, remaining = _distribute(health, 100, nta)
    degraded_load, remaining = _distribute(degr, remaining, nta)
    if remaining:
        first_healthy = next((i for i, h in enumerate(health) if h > 0), None)
        if first_healthy is not None:
            healthy_load[first_healthy] += remaining
        else:
            first_degraded = next(i for i, d in enumerate(degr) if d > 0)
            degraded_load[first_degraded] += remaining
    return tuple(healthy_load), tuple(degraded_load)


def _distribute(levels: Sequence[int], budget: int, nta: int) -> tuple[list[int], int]:
    loads = []
    for value in levels:
        load = min(budget, value * 100 // nta)
        loads.append(load)
        budget -= load
    return loads, budget


def _all_on_first(levels: int) -> Loads:
    return (100,) + (0,) * (levels - 1) if levels else ()


def is_in_panic(healthy: int, degraded: int, total: int, threshold: int) -> bool:
    """``100*healthy/total + 100*degraded/total < threshold`` (exact; empty level = 0%)."""
    return 100 * (healthy + degraded) < threshold * total if total > 0 else threshold > 0


def total_panic_load(total: Sequence[int]) -> Loads:
    """Loads when every level panics: ``100 * hosts(P) // all_hosts``, leftover to the first
    non-empty level."""
    hosts = sum(total)
    if hosts == 0:
        return _all_on_first(len(total))
    loads = [100 * t // hosts for t in total]
    first = next(i for i, t in enumerate(total) if t > 0)
    loads[first] += 100 - sum(loads)
    return tuple(loads)


@dataclass(frozen=True, slots=True)
class PriorityLoads:
    healthy_load: Loads
    degraded_load: Loads
    panic: tuple[bool, ...]
    total_panic: bool


def evaluate_priorities(
    healthy: Sequence[int],
    degraded: Sequence[int],
    total: Sequence[int],
    panic_threshold: int = DEFAULT_PANIC_THRESHOLD,
    overprovisioning: int = OVERPROVISIONING_FACTOR,
) -> PriorityLoads:
    """Loads and panic flags exactly as Envoy's ``recalculatePerPriorityPanic`` leaves them."""
    healthy_load, degraded_load = priority_load(healthy, degraded, total, overprovisioning)
    levels = len(total)
    nta = min(
        100,
        sum(availability(h, t, overprovisioning) for h, t in zip(healthy, total, strict=True))
        + sum(availability(d, t, overprovisioning) for d, t in zip(degraded, total, strict=True)),
    )
    threshold = min(100, panic_threshold)
    if nta == 100 or threshold <= 0 or not levels:
        return PriorityLoads(healthy_load, degraded_load, (False,) * levels, False)
    panic = tuple(
        is_in_panic(h, d, t, threshold) for h, d, t in zip(healthy, degraded, total, strict=True)
    )
    if all(panic):
        return PriorityLoads(total_panic_load(total), (0,) * levels, panic, True)
    return PriorityLoads(healthy_load, degraded_load, panic, False)


def choose_priority(draw: int, healthy_load: Loads, degraded_load: Loads) -> tuple[int, bool]:
    """``(level, degraded?)`` for a draw in 1..100 (Envoy: ``hash % 100 + 1``)."""
    aggregate = 0
    for level, load in enumerate(healthy_load):
        aggregate += load
        if draw <= aggregate:
            return level, False
    for level, load in enumerate(degraded_load):
        aggregate += load
        if draw <= aggregate:
            return level, True
    return 0, False


def effective_locality_weight(
    weight: int, eligible: int, total: int, overprovisioning: int = OVERPROVISIONING_FACTOR
) -> float:
    """``weight * min(1, 1.4 * eligible / total)`` in Envoy's double arithmetic (0 if empty).

    Localities X (weight 1, 70% healthy) and Y (weight 2, healthy): 0.98 vs 2, X gets 32.89%.
    """
    if total <= 0:
        return 0.0
    return weight * min(1.0, (overprovisioning / 100.0) * (eligible / total))


def locality_scheduler(weights: Sequence[float]) -> EdfScheduler[int] | None:
    """EDF over locality indexes with positive weight; None when no locality can be picked."""
    scheduler: EdfScheduler[int] = EdfScheduler()
    for index, weight in enumerate(weights):
        if weight > 0:
            scheduler.add(index, 1.0 / weight)
    return scheduler if len(scheduler) else None


@dataclass(frozen=True, slots=True)
class LevelState:
    priority: int
    hosts: int
    healthy: int
    availability: int
    load: int
    degraded_load: int
    panic: bool
    ejected: tuple[str, ...]
    """Hosts ejected by outlier detection."""
    hc_failed: tuple[str, ...]
    """Hosts failing active health checks."""


@dataclass(frozen=True, slots=True)
class PriorityState:
    """What ``explain``/admin output shows about one cluster's priority levels."""

    levels: tuple[LevelState, ...]
    total_panic: bool
    panic_threshold: int
    locality_weighted: bool


class _Level:
    __slots__ = ("all_lb", "healthy_lb", "locality_lbs", "scheduler")

    def __init__(self) -> None:
        self.healthy_lb: LoadBalancer | None = None
        self.all_lb: LoadBalancer | None = None
        self.scheduler: EdfScheduler[int] | None = None
        self.locality_lbs: list[LoadBalancer] = []


class PriorityLoadBalancer:
    """One cluster's balancer: priority by load, then locality (EDF), then the policy's algorithm.

    Not thread-safe and never blocking; call ``update`` after membership or health changes.
    """

    def __init__(
        self,
        policy: LbPolicy,
        hosts: Sequence[Host],
        *,
        panic_threshold: int,
        locality_weighted: bool,
        rng: random.Random,
        offload: Offload | None = None,
    ) -> None:
        """``offload``: where hash tables are built (``lb/tables.py``); None builds them in
        place."""
        self._policy = policy
        self._hashing = policy.kind in HASH_KINDS
        self._panic_threshold = panic_threshold
        self._locality_weighted = locality_weighted
        self._rng = rng
        self._hosts: tuple[Host, ...] = ()
        self._by_level: list[list[Host]] = []
        self._loads = PriorityLoads((), (), (), False)
        self._levels: list[_Level] = []
        self._built: dict[tuple[object, ...], LoadBalancer] = {}
        self._direct: LoadBalancer | None = None
        """The balancer every pick goes to when there is nothing to decide above it."""
        self._sole: Host | None = None
        """The host every pick returns: one candidate, and a balancer whose picks are free of
        side effects that matter (no random draw)."""
        self._tables = (
            TableBuilds(offload, self.update) if offload is not None and self._hashing else None
        )
        self._level = 0
        self.update(hosts)

    def update(self, hosts: Sequence[Host] | None = None) -> None:
        """Recompute levels, loads and panic, and rebuild the inner balancers.

        Inner balancers over an unchanged candidate tuple are kept (round-robin position and
        hash tables survive a change elsewhere in the cluster).
        """
        if hosts is not None:
            self._hosts = tuple(hosts)
        count = max((h.priority for h in self._hosts), default=-1) + 1
        by_level: list[list[Host]] = [[] for _ in range(count)]
        for host in self._hosts:
            by_level[host.priority].append(host)
        healthy = [sum(1 for h in level if h.healthy) for level in by_level]
        total = [len(level) for level in by_level]
        self._by_level = by_level
        self._loads = evaluate_priorities(healthy, [0] * count, total, self._panic_threshold)
        previous, self._built = self._built, {}
        levels = []
        for i, level in enumerate(by_level):
            self._level = i
            levels.append(self._build_level(level, self._loads.panic[i], previous))
        self._levels = levels
        self._direct = self._sole = None
        if len(self._levels) == 1 and self._levels[0].scheduler is None:
            only = self._levels[0]
            self._direct = only.all_lb if only.all_lb is not None else only.healthy_lb
            if isinstance(self._direct, LeastRequestLoadBalancer | RoundRobinLoadBalancer):
                self._sole = self._direct.sole_host()

    def choose_host(self, ctx: LbContext) -> Host | None:
        """A host, or None when the chosen level has no candidate ("no healthy upstream")."""
        if self._sole is not None:
            return self._sole
        if self._direct is not None:
            return self._direct.choose_host(ctx)
        levels = self._levels
        if not levels:
            return None
        if len(levels) == 1:
            level = levels[0]
        else:
            if self._hashing and ctx.hash_key is not None:
                draw = ctx.hash_key % 100 + 1
            else:
                draw = self._rng.randrange(100) + 1
            index, _ = choose_priority(draw, self._loads.healthy_load, self._loads.degraded_load)
            level = levels[index]
        if level.scheduler is not None:
            picked = level.scheduler.pick()
            assert picked is not None
            return level.locality_lbs[picked].choose_host(ctx)
        inner = level.all_lb if level.all_lb is not None else level.healthy_lb
        return inner.choose_host(ctx) if inner is not None else None

    def state(self) -> PriorityState:
        levels = []
        for i, hosts in enumerate(self._by_level):
            healthy = sum(1 for h in hosts if h.healthy)
            levels.append(
                LevelState(
                    priority=i,
                    hosts=len(hosts),
                    healthy=healthy,
                    availability=availability(healthy, len(hosts)),
                    load=self._loads.healthy_load[i],
                    degraded_load=self._loads.degraded_load[i],
                    panic=self._loads.panic[i],
                    ejected=tuple(h.label for h in hosts if h.ejected),
                    hc_failed=tuple(h.label for h in hosts if h.hc_failed),
                )
            )
        return PriorityState(
            levels=tuple(levels),
            total_panic=self._loads.total_panic,
            panic_threshold=self._panic_threshold,
            locality_weighted=self._locality_weighted,
        )

    def _build_level(
        self, hosts: list[Host], panic: bool, previous: dict[tuple[object, ...], LoadBalancer]
    ) -> _Level:
        level = _Level()
        if panic:
            # Panic balances over every host of the level and skips locality picking (Envoy).
            level.all_lb = self._plain_or_folded(hosts, previous)
            return level
        healthy = [h for h in hosts if h.healthy]
        if not healthy:
            return level
        if not self._locality_weighted or self._hashing:
            level.healthy_lb = self._plain_or_folded(healthy, previous)
            return level
        weights = []
        for group in _group_by_locality(hosts):
            eligible = [h for h in group if h.healthy]
            weight = group[0].locality_weight
            weights.append(effective_locality_weight(weight, len(eligible), len(group)))
            level.locality_lbs.append(self._balancer(eligible, previous))
        level.scheduler = locality_scheduler(weights)
        if level.scheduler is None:
            level.healthy_lb = self._balancer(healthy, previous)
        return level

    def _plain_or_folded(
        self, hosts: list[Host], previous: dict[tuple[object, ...], LoadBalancer]
    ) -> LoadBalancer:
        """Hashing with locality weights folds them into the table (picking a locality first
        would break key affinity); every other case balances over ``hosts`` by host weight."""
        if self._hashing and self._locality_weighted:
            groups = _group_by_locality(hosts)
            folded = _folded_weights(groups)
            if any(w > 0 for w in folded):
                return self._balancer([h for g in groups for h in g], previous, folded)
        return self._balancer(hosts, previous)

    def _balancer(
        self,
        hosts: Sequence[Host],
        previous: dict[tuple[object, ...], LoadBalancer],
        weights: Sequence[float] | None = None,
    ) -> LoadBalancer:
        key: tuple[object, ...] = tuple(hosts)
        if weights is not None:
            key += tuple(weights)
        tables = self._tables
        lb = previous.get(key) or (tables.take(key) if tables is not None else None)
        if lb is None:
            policy, rng = self._policy, self._rng
            if weights is None:
                build = partial(build_load_balancer, policy, hosts, rng)
            else:
                build = partial(build_weighted_hash_balancer, policy, hosts, weights, rng)
            interim = None
            if tables is not None:
                interim = tables.interim(self._level, key, hosts, build)
            if interim is not None:
                return interim  # not kept: the next update asks for the real table again
            lb = build()
        if tables is not None:
            tables.current[self._level] = (hosts, lb)
        self._built[key] = lb
        return lb


def _group_by_locality(hosts: Sequence[Host]) -> list[list[Host]]:
    groups: dict[Locality, list[Host]] = {}
    for host in hosts:
        groups.setdefault(host.locality, []).append(host)
    return list(groups.values())


def _folded_weights(groups: Sequence[Sequence[Host]]) -> list[float]:
    """Envoy's locality-weighted hashing: each host gets
    ``locality_weight * weight / sum(weights in its locality)``, in the order of ``groups``."""
    folded: list[float] = []
    for group in groups:
        total = sum(h.weight for h in group)
        folded.extend(group[0].locality_weight * h.weight / total for h in group)
    return folded
