"""Control path: Istio ``localityLbSetting`` -> endpoint priorities and locality weights.

Pure translation with the semantics of Istio pilot's ``loadbalancer.go``:

* **Failover** (only with outlier detection, otherwise Envoy would never see a level fail and
  Istio leaves every endpoint at priority 0): endpoints are ranked against the gateway's own
  locality -- 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 elsewhere, and 4
  for regions other than the ``to`` of a ``failover`` rule whose ``from`` is our region.
* **failoverPriority**: an ordered label list; matching all N labels gives 0, only the first
  N-1 gives 1, ..., none gives N. Combined with ``failover`` the two ranks form a tuple key.
* Priorities are compacted to 0..K without gaps.
* **distribute** (``apply_distribute``): locality weights from the first rule whose ``from``
  matches our locality; endpoints of localities matched by no ``to`` are dropped.

Example (Istio failover task): gateway in region1/zone1, rule ``region1 -> region2``; endpoints
in region1/zone1, region1/zone2, region2/zone3, region3/zone4 rank 0, 2, 3, 4 and are compacted
to priorities 0, 1, 2, 3.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from gateway_core.config.destination_rule import (
    LocalityDistribute,
    LocalityLoadBalancerSetting,
)
from gateway_core.snapshot import EndpointSpec, Locality

NETWORK_LABEL = "topology.istio.io/network"


def locality_priority(
    local: Locality, endpoint: Locality, failover: Sequence[tuple[str, str]] = ()
) -> int:
    """Istio ``LbPriority`` plus the ``failover`` rules as ``(from_region, to_region)`` pairs."""
    if local.region == endpoint.region:
        if local.zone == endpoint.zone:
            return 0 if local.subzone == endpoint.subzone else 1
        return 2
    for from_region, to_region in failover:
        if from_region == local.region:
            return 3 if endpoint.region == to_region else 4
    return 3


def failover_priority_level(
    labels_order: Sequence[str],
    client_labels: Mapping[str, str],
    endpoint_labels: Mapping[str, str],
) -> int:
    """Rank of one endpoint for ``failoverPriority``: 0 when every label matches, ``N - j`` when
    label ``j`` is the first mismatch. ``key=value`` compares the endpoint with the literal.

    Special case: a leading ``topology.istio.io/network`` mismatch does not stop the walk; it
    adds N instead, so endpoints on another network rank after every same-network endpoint but
    keep their order by the remaining labels.
    """
    count = len(labels_order)
    base = 0
    for j, entry in enumerate(labels_order):
        key, expected = _label_rule(entry, client_labels)
        if expected == endpoint_labels.get(key, ""):
            continue
        if j == 0 and key == NETWORK_LABEL:
            base = count
            continue
        return base + count - j
    return base


def _label_rule(entry: str, client_labels: Mapping[str, str]) -> tuple[str, str]:
    # Go's strings.Split: only "key=value" with exactly one "=" carries a literal value.
    parts = entry.split("=")
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], client_labels.get(parts[0], "")


def assign_priorities(
    local: Locality,
    client_labels: Mapping[str, str],
    endpoints: Sequence[EndpointSpec],
    setting: LocalityLoadBalancerSetting | None,
    outlier_enabled: bool,
) -> tuple[EndpointSpec, ...]:
    """Endpoints with ``priority`` set and compacted to 0..K.

    ``setting`` None means no DestinationRule setting: Istio's mesh default
    (``localityLbSetting.enabled: true``, no rules) applies, i.e. plain locality failover once
    outlier detection is configured. ``enabled: false`` or ``distribute`` keep everything at 0.
    """
    inactive = setting is not None and (setting.enabled is False or bool(setting.distribute))
    if not outlier_enabled or inactive:
        return tuple(dataclasses.replace(e, priority=0) for e in endpoints)
    failover = [(f.from_, f.to) for f in setting.failover] if setting else []
    labels_order = setting.failover_priority if setting else []
    keys: list[tuple[int, ...]] = []
    for endpoint in endpoints:
        if not labels_order:
            keys.append((locality_priority(local, endpoint.locality, failover),))
            continue
        # Istio skips failoverPriority when the gateway has no labels at all.
        rank = (
            failover_priority_level(labels_order, client_labels, endpoint.labels)
            if client_labels
            else 0
        )
        if failover:
            keys.append((rank, locality_priority(local, endpoint.locality, failover)))
        else:
            keys.append((rank,))
    compact = {key: i for i, key in enumerate(sorted(set(keys)))}
    return tuple(
        dataclasses.replace(e, priority=compact[k]) for e, k in zip(endpoints, keys, strict=True)
    )


def locality_matches(locality: Locality, pattern: str) -> bool:
    """Istio ``LocalityMatch``: ``region/zone/subzone`` where ``*`` or a missing part matches
    anything (a ``*`` region matches every region)."""
    parts = pattern.split("/")
    region = parts[0]
    zone = parts[1] if len(parts) > 1 else ""
    subzone = parts[2] if len(parts) > 2 else ""
    return (
        (region == "*" or region == locality.region)
        and (zone in ("*", "") or zone == locality.zone)
        and (subzone in ("*", "") or subzone == locality.subzone)
    )


def apply_distribute(
    local: Locality,
    endpoints: Sequence[EndpointSpec],
    distribute: Sequence[LocalityDistribute],
) -> tuple[EndpointSpec, ...]:
    """Endpoints with ``locality_weight`` set by the first ``distribute`` rule matching ``local``.

    A locality's original weight is the sum of its endpoint weights (what Istio's EDS sends as
    ``load_balancing_weight``). For each ``to`` pattern ``w``, the localities it matches (and no
    earlier pattern matched) get ``ceil(original * w / sum(original of those localities))``.
    Localities no pattern matches are removed. Without a matching rule every locality keeps its
    original weight. Patterns are applied in YAML order (Istio iterates a Go map, in random order,
    so overlapping patterns are ambiguous there).

    Example (Istio distribute task): from ``region1/zone1/*`` to r1/z1 70, r1/z2 20, r3/z4 10
    with one endpoint per locality -> weights 70, 20, 10 and region2/zone3 dropped.
    """
    original: dict[Locality, int] = {}
    for endpoint in endpoints:
        original[endpoint.locality] = original.get(endpoint.locality, 0) + endpoint.weight
    rule = next((r for r in distribute if locality_matches(local, r.from_)), None)
    if rule is None:
        return tuple(
            dataclasses.replace(e, locality_weight=original[e.locality]) for e in endpoints
        )
    weights: dict[Locality, int] = {}
    unmatched = list(original)
    for pattern, weight in rule.to.items():
        matched = [loc for loc in unmatched if locality_matches(loc, pattern)]
        unmatched = [loc for loc in unmatched if loc not in matched]
        total = sum(original[loc] for loc in matched)
        for loc in matched:
            # A zero weight (rejected by validation) leaves the original weight, as Istio does.
            scaled = math.ceil(original[loc] * weight / total)
            weights[loc] = scaled if weight > 0 else original[loc]
    return tuple(
        dataclasses.replace(e, locality_weight=weights[e.locality])
        for e in endpoints
        if e.locality in weights
    )
