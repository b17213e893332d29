"""Control path: checks of ``localityLbSetting`` (Istio ``agent.ValidateLocalityLbSetting``).

Like Istio, the first structural problem of a setting (distribute+failover, a bad weight, a
total other than 100, failover mixed with topology labels) ends the check of that setting.
"""

from __future__ import annotations

from gateway_core.config.destination_rule import LocalityLoadBalancerSetting, OutlierDetection
from gateway_core.config.validation._common import Reporter

TOPOLOGY_LABELS = frozenset(
    {"topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone"}
)


def validate_locality_lb(
    lb: LocalityLoadBalancerSetting, path: str, rep: Reporter, outlier: OutlierDetection | None
) -> None:
    if lb.distribute and lb.failover:
        rep.error(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover:
        for i, label in enumerate(lb.failover_priority):
            if label in TOPOLOGY_LABELS:
                rep.error(
                    f"{path}.failoverPriority[{i}]",
                    f"can not simultaneously set 'failover' and topology label '{label}' in "
                    "'failover_priority'",
                )
                return
    if not _validate_distribute(lb, path, rep):
        return
    if (lb.failover or lb.failover_priority) and outlier is None:
        field = "failover" if lb.failover else "failoverPriority"
        rep.warning(
            f"{path}.{field}",
            "outlier detection policy must be provided for failover: without outlierDetection "
            "locality failover will not take effect",
        )
    for i, failover in enumerate(lb.failover):
        entry = f"{path}.failover[{i}]"
        if failover.from_ == failover.to:
            rep.error(entry, "locality lb failover settings must specify different regions")
        if "/" in failover.from_ or "/" in failover.to:
            rep.error(entry, "locality lb failover only specify region")
        if "*" in failover.from_ or "*" in failover.to:
            rep.error(entry, "locality lb failover region should not contain '*' wildcard")


def _validate_distribute(lb: LocalityLoadBalancerSetting, path: str, rep: Reporter) -> bool:
    sources: list[str] = []
    for i, rule in enumerate(lb.distribute):
        entry = f"{path}.distribute[{i}]"
        sources.append(rule.from_)
        total = 0
        for locality, weight in rule.to.items():
            if not 1 <= weight <= 100:
                rep.error(f"{entry}.to.{locality}", "locality weight must be in range [1, 100]")
                return False
            total += weight
        if total != 100:
            rep.error(f"{entry}.to", f"total locality weight {total} != 100")
            return False
        rep.error(f"{entry}.to", localities_error(list(rule.to)))
    rep.error(f"{path}.distribute", localities_error(sources))
    return True


def localities_error(localities: list[str]) -> str | None:
    """Istio ``validateLocalities``: wildcards only at the end, no empty parts, no overlaps.

    Mirrors Istio's region -> zone -> subzone table exactly, including its asymmetry: a
    locality is checked against the ones listed before it.
    """
    table: dict[str, dict[str, set[str]]] = {}
    for locality in localities:
        stars = locality.count("*")
        if stars > 1 or (stars == 1 and not locality.endswith("*")):
            return (
                f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
            )
        overlap = f"locality {locality} overlap with previous specified ones"
        if "*" in table:
            return overlap
        parts = locality.split("/", 2)
        if any(part == "" for part in parts):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        if not _record_locality(table, parts):
            return overlap
    return None


def _record_locality(table: dict[str, dict[str, set[str]]], parts: list[str]) -> bool:
    region = parts[0]
    zones = table.get(region)
    if len(parts) == 1:
        if zones is not None:
            return False
        table[region] = {"*": {"*"}}
        return True
    zone = parts[1]
    subzone = parts[2] if len(parts) == 3 else "*"
    if zones is None:
        table[region] = {zone: {subzone}}
        return True
    if "*" in zones:
        return False
    subzones = zones.get(zone)
    if len(parts) == 2:
        if subzones is not None:
            return False
        zones[zone] = {"*"}
        return True
    if subzones is None:
        zones[zone] = {subzone}
        return True
    if "*" in subzones or subzone in subzones:
        return False
    subzones.add(subzone)
    return True
