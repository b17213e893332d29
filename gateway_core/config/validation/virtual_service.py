"""Control path: checks of one ``VirtualService`` (Istio ``ValidateVirtualService``).

Rules the first match wins on are also analysed for rules that can never match, as Istio's
validation warns about them (``virtualService rule #1 not used ...``).
"""

from __future__ import annotations

import json

from gateway_core.config.hosts import hosts_intersect
from gateway_core.config.resources import Resource
from gateway_core.config.validation._common import (
    Reporter,
    export_to_errors,
    is_ip,
    validate_gateway_names,
    wildcard_domain_error,
)
from gateway_core.config.validation.http_route import validate_http_route
from gateway_core.config.virtual_service import HTTPRoute, VirtualServiceSpec

MESH_GATEWAY = "mesh"


def validate_virtual_service(res: Resource[VirtualServiceSpec], rep: Reporter) -> None:
    spec = res.spec
    if not spec.hosts:
        rep.error(
            "spec.hosts",
            "virtual service must have at least one host (delegate virtual services are not "
            "supported by this gateway)",
        )
    validate_gateway_names(spec.gateways, "spec.gateways", rep)
    bound_to_gateway = bool(spec.gateways) and MESH_GATEWAY not in spec.gateways
    _validate_hosts(spec.hosts, applies_to_mesh=not bound_to_gateway, rep=rep)
    if not spec.http and not spec.tcp and not spec.tls:
        rep.error("spec", "http, tcp or tls must be provided in virtual service")
    for field, routes in (("tls", spec.tls), ("tcp", spec.tcp)):
        if routes:
            rep.warning(f"spec.{field}", "ignored: this gateway serves HTTP routes only")
    for i, route in enumerate(spec.http):
        validate_http_route(route, f"spec.http[{i}]", rep)
    for message in export_to_errors(res.namespace, spec.export_to, service_entry=False):
        rep.error("spec.exportTo", message)
    _warn_unreachable_rules(spec.http, rep)


def _validate_hosts(hosts: list[str], *, applies_to_mesh: bool, rep: Reporter) -> None:
    all_valid = True
    for i, host in enumerate(hosts):
        error = wildcard_domain_error(host)
        if error is not None and not is_ip(host):
            rep.error(f"spec.hosts[{i}]", error)
            all_valid = False
        elif applies_to_mesh and host == "*":
            rep.error(
                f"spec.hosts[{i}]",
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            )
            all_valid = False
    if not all_valid:
        return
    for i, first in enumerate(hosts):
        for second in hosts[i + 1 :]:
            if hosts_intersect(first, second):
                rep.error("spec.hosts", f"duplicate hosts in virtual service: {first} & {second}")


def _warn_unreachable_rules(routes: list[HTTPRoute], rep: Reporter) -> None:
    """Istio ``analyzeUnreachableHTTPRules``: catch-all rules and repeated match blocks."""
    seen: dict[str, int] = {}
    catch_all = -1
    for i, route in enumerate(routes):
        name = _rule_name(route, i)
        if not route.match:
            if catch_all >= 0:
                rep.warning(
                    f"spec.http[{i}]",
                    f"virtualService rule {name} not used (only the last rule can have no matches)",
                )
            catch_all = i
            continue
        if catch_all >= 0:
            rep.warning(
                f"spec.http[{i}]",
                f"virtualService rule {name} not used (route without matches defined before)",
            )
            continue
        duplicates = 0
        for j, match in enumerate(route.match):
            key = json.dumps(match.model_dump(mode="json", exclude={"name"}), sort_keys=True)
            if key in seen:
                earlier = _rule_name(routes[seen[key]], seen[key])
                match_name = f'"{match.name}"' if match.name else f"#{j}"
                rep.warning(
                    f"spec.http[{i}].match[{j}]",
                    f"virtualService rule {name} match {match_name} is not used "
                    f"(duplicate/overlapping match in rule {earlier})",
                )
                duplicates += 1
            else:
                seen[key] = i
        if duplicates == len(route.match):
            rep.warning(
                f"spec.http[{i}]",
                f"virtualService rule {name} not used (all matches used by prior rules)",
            )


def _rule_name(route: HTTPRoute, index: int) -> str:
    return f'"{route.name}"' if route.name else f"#{index}"
