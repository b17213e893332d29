"""Control path: Gateway servers → listeners (Istio ``mergeGateways``).

Servers with the same bind address and port share one listener. Plain-HTTP servers on a port
share one route table (``http.<port>``); every HTTPS server keeps its own route table
(``https.<port>.<server>``) selected by SNI, like Istio's per-server filter chains.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.gateway import GatewaySpec, Server, ServerTLSMode
from gateway_core.config.hosts import hosts_intersect, split_server_host
from gateway_core.config.resources import Resource
from gateway_core.snapshot import (
    ListenerProtocol,
    ListenerSpec,
    NodeInfo,
    ServerSpec,
    ServerTlsMode,
    TlsServerSpec,
)

HTTP_PROTOCOLS = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}
HTTPS_PROTOCOLS = {"HTTPS"}


@dataclass(slots=True)
class BoundServer:
    """A Gateway server placed on a listener, with what routing needs to know about it."""

    gateway: Resource[GatewaySpec]
    index: int
    server: Server
    route_table: str
    hosts: tuple[str, ...]
    """DNS parts of ``Server.hosts``."""
    namespaces: tuple[str, ...]
    """Namespace part of each host (``*`` = any)."""
    https_redirect: bool = False
    https_port: int = 443

    @property
    def gateway_key(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    def accepts(self, vs_namespace: str, vs_host: str) -> str | None:
        """The server host a VirtualService host binds to, or None (``*.example.com`` covers
        ``a.example.com``; a ``ns/`` prefix restricts which namespaces may bind)."""
        for ns, host in zip(self.namespaces, self.hosts, strict=True):
            ns_ok = ns in ("*", vs_namespace) or (
                ns == "." and vs_namespace == self.gateway.namespace
            )
            if ns_ok and hosts_intersect(host, vs_host):
                return host
        return None


@dataclass(slots=True)
class ListenerPlan:
    bind: str
    port: int
    protocol: ListenerProtocol
    servers: list[BoundServer] = field(default_factory=list)


def server_name(gw: Resource[GatewaySpec], index: int, server: Server) -> str:
    return server.name or f"{gw.namespace}.{gw.name}.{index}"


def plan_listeners(
    gateways: tuple[Resource[GatewaySpec], ...], node: NodeInfo, diags: Diagnostics
) -> list[ListenerPlan]:
    plans: dict[tuple[str, int], ListenerPlan] = {}
    for gw in gateways:
        for i, server in enumerate(gw.spec.servers):
            protocol = _protocol(server.port.protocol)
            path = f"spec.servers[{i}].port.protocol"
            if protocol is None:
                continue  # validation reported it
            bind = server.bind or node.bind_address
            key = (bind, server.port.number)
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = ListenerPlan(bind, server.port.number, protocol)
            elif plan.protocol is not protocol:
                diags.error(
                    f"port {server.port.number} is already used with protocol "
                    f"{plan.protocol.value}",
                    origin=gw.origin,
                    ref=gw.ref,
                    path=path,
                )
                continue
            split = [split_server_host(h) for h in server.hosts]
            table = (
                f"http.{server.port.number}"
                if protocol is ListenerProtocol.HTTP
                else f"https.{server.port.number}.{server_name(gw, i, server)}"
            )
            plan.servers.append(
                BoundServer(
                    gateway=gw,
                    index=i,
                    server=server,
                    route_table=table,
                    hosts=tuple(h for _, h in split),
                    namespaces=tuple(n for n, _ in split),
                    https_redirect=bool(server.tls and server.tls.https_redirect),
                )
            )
    _assign_https_redirect_ports(list(plans.values()))
    return list(plans.values())


def _protocol(name: str) -> ListenerProtocol | None:
    upper = name.upper()
    if upper in HTTP_PROTOCOLS:
        return ListenerProtocol.HTTP
    if upper in HTTPS_PROTOCOLS:
        return ListenerProtocol.HTTPS
    return None


def _assign_https_redirect_ports(plans: list[ListenerPlan]) -> None:
    """An httpsRedirect server sends clients to the HTTPS server that serves the same hosts:
    the same Gateway first, then any Gateway; 443 when there is none."""
    https = [s for p in plans if p.protocol is ListenerProtocol.HTTPS for s in p.servers]
    for plan in plans:
        for bound in plan.servers:
            if not bound.https_redirect:
                continue
            same_gw = [s for s in https if s.gateway is bound.gateway]
            for candidates in (same_gw, https):
                match = next(
                    (
                        s
                        for s in candidates
                        if any(hosts_intersect(a, b) for a in s.hosts for b in bound.hosts)
                    ),
                    None,
                )
                if match is not None:
                    bound.https_port = match.server.port.number
                    break


def build_listener_specs(plans: list[ListenerPlan], node: NodeInfo) -> tuple[ListenerSpec, ...]:
    specs = []
    for plan in plans:
        servers = tuple(
            ServerSpec(
                name=server_name(b.gateway, b.index, b.server),
                hosts=b.hosts,
                route_table=b.route_table,
                tls=translate_server_tls(b.server, node)
                if plan.protocol is ListenerProtocol.HTTPS
                else None,
            )
            for b in plan.servers
        )
        specs.append(
            ListenerSpec(
                name=f"{plan.bind}_{plan.port}",
                bind=plan.bind,
                port=plan.port,
                protocol=plan.protocol,
                servers=servers,
            )
        )
    return tuple(sorted(specs, key=lambda s: (s.port, s.bind)))


def translate_server_tls(server: Server, node: NodeInfo) -> TlsServerSpec | None:
    tls = server.tls
    if tls is None or tls.mode not in (
        ServerTLSMode.SIMPLE,
        ServerTLSMode.MUTUAL,
        ServerTLSMode.OPTIONAL_MUTUAL,
    ):
        return None
    # Istio allows up to two sources (RSA + ECDSA); this gateway serves the first one.
    credential = tls.credential_name or (tls.credential_names[0] if tls.credential_names else None)
    if credential:
        base = os.path.join(node.cert_dir, credential)
        cert, key = os.path.join(base, "tls.crt"), os.path.join(base, "tls.key")
        ca: str | None = os.path.join(base, "ca.crt")
    elif tls.tls_certificates:
        first = tls.tls_certificates[0]
        cert, key = first.server_certificate or "", first.private_key or ""
        ca = tls.ca_certificates or first.ca_certificates
    else:
        cert, key, ca = tls.server_certificate or "", tls.private_key or "", tls.ca_certificates
    mode = ServerTlsMode(tls.mode.value)
    return TlsServerSpec(
        mode=mode,
        cert_file=cert,
        key_file=key,
        ca_file=ca if mode is not ServerTlsMode.SIMPLE else None,
        min_version="TLSV1_2"
        if tls.min_protocol_version.value == "TLS_AUTO"
        else tls.min_protocol_version.value,
        max_version=tls.max_protocol_version.value,
        cipher_suites=tuple(tls.cipher_suites),
        subject_alt_names=tuple(tls.subject_alt_names),
    )
