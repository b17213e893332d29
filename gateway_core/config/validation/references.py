"""Control path: cross-resource checks (gateways, destination hosts, subsets, ports, rule overlap).

These need the whole configuration: a VirtualService names Gateways and, through its
destinations, ServiceEntries and DestinationRule subsets.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.gateway import GatewaySpec
from gateway_core.config.hosts import fqdn, hosts_intersect, split_server_host
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.service_entry import Resolution
from gateway_core.config.validation._common import Reporter, wildcard_domain_error
from gateway_core.config.validation.lookup import destination_rule_for, service_entry_for
from gateway_core.config.validation.virtual_service import MESH_GATEWAY
from gateway_core.config.virtual_service import Destination, VirtualServiceSpec


def validate_references(resources: Resources, diags: Diagnostics) -> None:
    for vs in resources.virtual_services:
        rep = Reporter(diags, vs.origin, vs.ref)
        _check_gateways(vs, resources, rep)
        for path, dest in _destinations(vs.spec):
            _check_destination(dest, path, vs.namespace, resources, rep)
    _check_duplicate_rules(resources, diags)
    for dr in resources.destination_rules:
        _check_subset_endpoints(dr, resources, Reporter(diags, dr.origin, dr.ref))


def resolve_gateway_name(name: str, namespace: str) -> tuple[str, str] | None:
    """``(namespace, name)`` a VirtualService's gateway entry refers to; None for ``mesh``."""
    if name == MESH_GATEWAY:
        return None
    if "/" in name:
        gw_namespace, _, gw_name = name.partition("/")
        return gw_namespace, gw_name
    if "." in name:
        # Legacy FQDN form ``name.namespace[.svc.cluster.local]``.
        parts = name.split(".")
        return parts[1], parts[0]
    return namespace, name


def _gateway_entries(spec: VirtualServiceSpec) -> Iterator[tuple[str, str]]:
    for i, name in enumerate(spec.gateways):
        yield f"spec.gateways[{i}]", name
    for i, route in enumerate(spec.http):
        for j, match in enumerate(route.match):
            for k, name in enumerate(match.gateways):
                yield f"spec.http[{i}].match[{j}].gateways[{k}]", name


def _check_gateways(vs: Resource[VirtualServiceSpec], resources: Resources, rep: Reporter) -> None:
    checked: set[tuple[str, str]] = set()
    for path, name in _gateway_entries(vs.spec):
        target = resolve_gateway_name(name, vs.namespace)
        if target is None or target in checked:
            continue
        checked.add(target)
        gateway = resources.gateway(*target)
        if gateway is None:
            rep.error(path, f"gateway {target[0]}/{target[1]} not found")
        elif vs.spec.hosts and not _served_by(vs, gateway):
            rep.warning(
                path,
                f"no host matches gateway {gateway.namespace}/{gateway.name}; "
                "the virtual service is not served by it",
            )


def _served_by(vs: Resource[VirtualServiceSpec], gateway: Resource[GatewaySpec]) -> bool:
    """Istio's binding rule: some VS host intersects a server host visible to the VS namespace."""
    vs_hosts = [fqdn(host, vs.namespace) for host in vs.spec.hosts]
    for server in gateway.spec.servers:
        for entry in server.hosts:
            namespace, dns_name = split_server_host(entry)
            if namespace == ".":
                namespace = gateway.namespace
            if namespace not in ("*", vs.namespace):
                continue
            if any(hosts_intersect(dns_name.lower(), host) for host in vs_hosts):
                return True
    return False


def _destinations(spec: VirtualServiceSpec) -> Iterator[tuple[str, Destination]]:
    for i, route in enumerate(spec.http):
        for k, dest in enumerate(route.route):
            yield f"spec.http[{i}].route[{k}].destination", dest.destination
        if route.mirror is not None:
            yield f"spec.http[{i}].mirror", route.mirror
        for k, mirror in enumerate(route.mirrors):
            yield f"spec.http[{i}].mirrors[{k}].destination", mirror.destination


def _check_destination(
    dest: Destination, path: str, namespace: str, resources: Resources, rep: Reporter
) -> None:
    service_entry = service_entry_for(resources, dest.host, namespace)
    if dest.host == "*":
        rep.error(f"{path}.host", f"invalid destination host {dest.host}")
    elif service_entry is None:
        rep.error(f"{path}.host", wildcard_domain_error(dest.host))
    host = fqdn(dest.host, namespace)
    if dest.subset:
        _check_subset(dest, f"{path}.subset", namespace, resources, rep)
    if service_entry is None or not service_entry.spec.ports:
        return
    ports = [p.number for p in service_entry.spec.ports]
    se_name = f"{service_entry.namespace}/{service_entry.name}"
    if dest.port is None:
        if len(ports) > 1:
            rep.error(
                f"{path}.port",
                f"destination port is required: ServiceEntry {se_name} declares more than one "
                f"port for host {host} ({', '.join(map(str, ports))})",
            )
    elif dest.port.number not in ports:
        rep.error(
            f"{path}.port.number",
            f"port {dest.port.number} is not a port of ServiceEntry {se_name} for host {host} "
            f"({', '.join(map(str, ports))})",
        )


def _check_subset(
    dest: Destination, path: str, namespace: str, resources: Resources, rep: Reporter
) -> None:
    host = fqdn(dest.host, namespace)
    rule = destination_rule_for(resources, dest.host, namespace)
    if rule is None or not rule.spec.subsets:
        rep.error(path, f"no DestinationRule defines subsets for host {host}")
    elif dest.subset not in {s.name for s in rule.spec.subsets}:
        rep.error(
            path,
            f"subset {dest.subset} not found in DestinationRule {rule.namespace}/{rule.name} "
            f"for host {host}",
        )


def _check_duplicate_rules(resources: Resources, diags: Diagnostics) -> None:
    first: dict[str, Resource[DestinationRuleSpec]] = {}
    for dr in resources.destination_rules:
        host = fqdn(dr.spec.host, dr.namespace)
        earlier = first.setdefault(host, dr)
        if earlier is dr:
            continue
        Reporter(diags, dr.origin, dr.ref).warning(
            "spec.host",
            f"DestinationRule {earlier.namespace}/{earlier.name} ({earlier.origin}) also "
            f"configures host {host}; Istio merges such rules only in some cases, this gateway "
            "uses the first in file order and ignores this one",
        )


def _check_subset_endpoints(
    dr: Resource[DestinationRuleSpec], resources: Resources, rep: Reporter
) -> None:
    service_entry = service_entry_for(resources, dr.spec.host, dr.namespace)
    if service_entry is None or service_entry.spec.resolution is not Resolution.STATIC:
        return
    endpoints = service_entry.spec.endpoints
    if not endpoints:
        return
    se_name = f"{service_entry.namespace}/{service_entry.name}"
    for i, subset in enumerate(dr.spec.subsets):
        wanted = subset.labels.items()
        if any(wanted <= ep.labels.items() for ep in endpoints):
            continue
        labels = ",".join(f"{k}={v}" for k, v in sorted(subset.labels.items()))
        rep.warning(
            f"spec.subsets[{i}].labels",
            f"subset {subset.name} ({labels}) selects no endpoint of STATIC ServiceEntry {se_name}",
        )
