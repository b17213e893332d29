"""Control path: ``explain`` a request against a snapshot, Istio-simulation style.

It follows the same steps as the data path: listener by port and scheme, server by SNI (HTTPS),
virtual host by Host, first matching rule, then the rule's action and the destination clusters
with their endpoints. The CLI's ``explain`` command and the tests use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gateway_core.config.hosts import host_matches
from gateway_core.proxy.client_info import origin_ip
from gateway_core.routing.actions import DirectResponseAction, RedirectAction, RouteAction
from gateway_core.routing.request import RequestHead
from gateway_core.security.authz import AccessFacts, AuthorizationFilter
from gateway_core.snapshot import (
    ClusterSpec,
    EndpointSpec,
    ListenerProtocol,
    ServerSpec,
    Snapshot,
    UpstreamProtocol,
)
from gateway_core.upstream.lb.priority import priority_load


@dataclass(frozen=True, slots=True)
class Call:
    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    source_ip: str = "127.0.0.1"
    http2: bool = False
    """The client speaks HTTP/2 (``--http2``: ALPN h2 over TLS, h2c prior knowledge in
    plaintext); it decides the upstream protocol of ``useClientProtocol`` clusters."""
    trusted_hops: int = 0
    """X-Forwarded-For hops the gateway trusts (``remote.ip``, ``remoteIpBlocks``)."""


@dataclass(frozen=True, slots=True)
class Destination:
    cluster: str
    host: str
    subset: str | None
    port: int
    weight: int
    share: float
    endpoints: tuple[dict[str, object], ...] = ()
    priorities: tuple[dict[str, object], ...] = ()
    """Per priority level: endpoints and the load it gets with every endpoint healthy."""
    protocol: str = "HTTP/1.1"
    """What the gateway speaks to this destination's hosts (and why)."""


@dataclass(slots=True)
class Result:
    listener: str | None = None
    server: str | None = None
    virtual_host: str | None = None
    route: str | None = None
    virtual_service: str | None = None
    rule_index: int | None = None
    match: dict[str, object] | None = None
    action: str | None = None
    redirect: str | None = None
    status: int | None = None
    destinations: list[Destination] = field(default_factory=list)
    reason: str = ""
    downstream_protocol: str = ""
    """What the client speaks to the gateway on this listener."""
    authorization: str = ""
    """Which AuthorizationPolicy and rule decided, or ``no policy: allowed``."""


def explain(snapshot: Snapshot, call: Call) -> Result:
    from gateway_core.proxy.local_reply import redirect_location

    parts = urlsplit(call.url)
    scheme = (parts.scheme or "http").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = parts.hostname or ""
    result = Result()
    protocol = ListenerProtocol.HTTPS if scheme == "https" else ListenerProtocol.HTTP
    listener = next(
        (ls for ls in snapshot.listeners if ls.port == port and ls.protocol is protocol), None
    )
    if listener is None:
        result.reason = f"no {protocol.value} listener on port {port}"
        return result
    result.listener = listener.name
    if not call.http2:
        result.downstream_protocol = "HTTP/1.1"
    elif protocol is ListenerProtocol.HTTPS:
        result.downstream_protocol = "HTTP/2 (TLS, ALPN h2)"
    else:
        result.downstream_protocol = "HTTP/2 (h2c, prior knowledge)"
    server = (
        _server_for_sni(listener.servers, host)
        if protocol is ListenerProtocol.HTTPS
        else listener.servers[0]
    )
    result.server = server.name
    headers = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in call.headers]
    authority = next((v for n, v in headers if n == b"host"), None)
    if authority is None:
        authority = parts.netloc.rpartition("@")[2].encode("latin-1")
        headers.append((b"host", authority))
    path = (parts.path or "/").encode()
    req = RequestHead(
        call.method.encode(),
        path,
        parts.query.encode(),
        authority,
        scheme.encode(),
        port,
        headers,
        call.source_ip,
    )
    result.authorization = _authorize(snapshot, call, req, port, protocol)
    if result.authorization.startswith("denied"):
        result.reason = "denied by authorization (403 RBAC: access denied)"
        result.status = 403
        return result
    table = snapshot.route_tables.get(server.route_table)
    if table is None:
        result.reason = f"route table {server.route_table} is missing"
        return result
    vh, entry, match = table.route(req)
    if vh is None:
        result.reason = f"no virtual host for {req.host!r} (404 NR)"
        result.status = 404
        return result
    result.virtual_host = vh.name
    if entry is None:
        result.reason = "no rule matched (404 NR)"
        result.status = 404
        return result
    result.route = entry.name
    result.virtual_service = entry.vs_ref
    result.rule_index = entry.rule_index
    result.match = match.describe() if match is not None else {}
    action = entry.action
    if isinstance(action, RedirectAction):
        result.action = "redirect"
        result.status = action.code
        result.redirect = redirect_location(action, req, match).decode("latin-1")
    elif isinstance(action, DirectResponseAction):
        result.action = "direct_response"
        result.status = action.status
    elif isinstance(action, RouteAction):
        result.action = "route"
        total = action.total_weight or 1
        for target in action.clusters:
            spec = snapshot.clusters.get(target.cluster)
            endpoints = tuple(
                {
                    "address": ep.address,
                    "port": ep.port,
                    "weight": ep.weight,
                    "locality": str(ep.locality),
                    "priority": ep.priority,
                    "labels": dict(ep.labels),
                }
                for ep in (spec.endpoints if spec is not None else ())
            )
            share = 1.0 if len(action.clusters) == 1 else target.weight / total
            result.destinations.append(
                Destination(
                    target.cluster,
                    target.host,
                    target.subset,
                    target.port,
                    target.weight,
                    share,
                    endpoints,
                    _levels(spec.endpoints if spec is not None else ()),
                    upstream_protocol_of(spec, call.http2),
                )
            )
    return result


def _authorize(
    snapshot: Snapshot, call: Call, req: RequestHead, port: int, protocol: ListenerProtocol
) -> str:
    """The gateway-wide authorization step as the data path runs it (``proxy/authorize.py``);
    explain presents no token and no client certificate."""
    engine = next((f for f in snapshot.gateway_filters if isinstance(f, AuthorizationFilter)), None)
    if engine is None:
        return "no policy: allowed"
    facts = AccessFacts(
        method=call.method,
        path=req.path.decode("latin-1"),
        host=req.authority.decode("latin-1").lower(),
        headers=req.headers,
        port=port,
        source_ip=call.source_ip,
        remote_ip=origin_ip(call.trusted_hops, req, call.source_ip),
        sni=req.host if protocol is ListenerProtocol.HTTPS else None,
    )
    return engine.decide(facts).describe()


def upstream_protocol_of(spec: ClusterSpec | None, client_http2: bool) -> str:
    """The upstream hop's protocol as the data path chooses it (``Exchange.route_to``)."""
    if spec is None:
        return "-"
    tls = " over TLS (ALPN h2)" if spec.tls is not None else " (h2c)"
    if spec.protocol is UpstreamProtocol.HTTP2:
        return "HTTP/2" + tls
    if spec.protocol is UpstreamProtocol.CLIENT:
        chosen = "HTTP/2" + tls if client_http2 else "HTTP/1.1"
        return f"{chosen}, the client's (useClientProtocol)"
    return "HTTP/1.1" + (" over TLS" if spec.tls is not None else "")


def _levels(endpoints: tuple[EndpointSpec, ...]) -> tuple[dict[str, object], ...]:
    """Envoy's priority loads with every endpoint healthy (a DNS name counts as one host)."""
    if not endpoints:
        return ()
    count = max(ep.priority for ep in endpoints) + 1
    total = [sum(1 for ep in endpoints if ep.priority == p) for p in range(count)]
    loads, _ = priority_load(total, [0] * count, total)
    return tuple({"priority": p, "endpoints": total[p], "load": loads[p]} for p in range(count))


def _server_for_sni(servers: tuple[ServerSpec, ...], sni: str) -> ServerSpec:
    """Same order as the TLS listener: exact, longest wildcard, ``*``, else the first server."""
    for s in servers:
        if sni in s.hosts:
            return s
    best: tuple[int, ServerSpec] | None = None
    for s in servers:
        for h in s.hosts:
            if h != "*" and host_matches(h, sni) and (best is None or len(h) > best[0]):
                best = (len(h), s)
    if best is not None:
        return best[1]
    return next((s for s in servers if "*" in s.hosts), servers[0])
