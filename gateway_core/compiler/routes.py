"""Control path: VirtualService HTTP routes → virtual hosts and route entries per route table.

Istio semantics: a VirtualService binds to a Gateway by ``gateways`` and to a server by host
(the vhost domain is the narrower of the VS host and the server host); VirtualServices with the
same host on one gateway are concatenated in file order; rules keep their order (first match
wins); a server with ``tls.httpsRedirect`` answers every request with a redirect.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway_core.compiler.clusters import ClusterCollector
from gateway_core.compiler.index import ConfigIndex, gateway_key
from gateway_core.compiler.listeners import BoundServer, ListenerPlan
from gateway_core.compiler.translate import translate_http_route
from gateway_core.config.hosts import fqdn, more_specific
from gateway_core.config.resources import Resource
from gateway_core.config.virtual_service import VirtualServiceSpec
from gateway_core.routing.actions import RedirectAction
from gateway_core.routing.route_table import RouteEntry, RouteTable, VirtualHost
from gateway_core.snapshot import NodeInfo


def build_route_tables(
    plans: list[ListenerPlan], index: ConfigIndex, node: NodeInfo, clusters: ClusterCollector
) -> dict[str, RouteTable]:
    by_table: dict[str, list[BoundServer]] = {}
    for plan in plans:
        for bound in plan.servers:
            by_table.setdefault(bound.route_table, []).append(bound)
    tables: dict[str, RouteTable] = {}
    for name, servers in by_table.items():
        vhosts = _virtual_hosts(servers, index, node, clusters)
        tables[name] = RouteTable.build(name, vhosts)
    return tables


def _virtual_hosts(
    servers: list[BoundServer], index: ConfigIndex, node: NodeInfo, clusters: ClusterCollector
) -> tuple[VirtualHost, ...]:
    routes: dict[str, list[RouteEntry]] = {}
    redirecting: set[str] = set()
    for bound in servers:
        for vs in index.resources.virtual_services:
            if bound.gateway_key not in _vs_gateways(vs):
                continue
            for domain in _domains(bound, vs):
                if domain in redirecting:
                    continue
                if bound.https_redirect:
                    routes[domain] = [_https_redirect_entry(bound)]
                    redirecting.add(domain)
                    continue
                entries = routes.setdefault(domain, [])
                for i, rule in enumerate(vs.spec.http):
                    entry = translate_http_route(vs, i, rule, bound, index, node, clusters)
                    if entry is not None:
                        entries.append(entry)
        if bound.https_redirect:
            # Every request to this server is redirected, VirtualService or not.
            for host in bound.hosts:
                if host not in routes:
                    routes[host] = [_https_redirect_entry(bound)]
                    redirecting.add(host)
    port = servers[0].server.port.number
    return tuple(
        VirtualHost(name=f"{domain}:{port}", domains=(domain,), routes=tuple(entries))
        for domain, entries in routes.items()
    )


def _vs_gateways(vs: Resource[VirtualServiceSpec]) -> set[str]:
    return {gateway_key(g, vs.namespace) for g in vs.spec.gateways if g != "mesh"}


def _domains(bound: BoundServer, vs: Resource[VirtualServiceSpec]) -> Iterable[str]:
    seen: list[str] = []
    for raw in vs.spec.hosts:
        for host in dict.fromkeys((raw.lower(), fqdn(raw, vs.namespace))):
            server_host = bound.accepts(vs.namespace, host)
            if server_host is None:
                continue
            domain = more_specific(server_host, host)
            if domain not in seen:
                seen.append(domain)
    return seen


def _https_redirect_entry(bound: BoundServer) -> RouteEntry:
    return RouteEntry(
        name=f"{bound.gateway.namespace}/{bound.gateway.name}/https-redirect",
        vs_ref=bound.gateway.ref,
        rule_index=-1,
        matches=(),
        action=RedirectAction(code=301, https_redirect=True, https_port=bound.https_port),
    )
