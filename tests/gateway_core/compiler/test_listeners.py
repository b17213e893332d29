"""Control path: Gateway servers become listeners and route tables (Istio mergeGateways)."""

from __future__ import annotations

from gateway_core.snapshot import ListenerProtocol, ServerTlsMode
from tests.gateway_core.compiler.compiler_testkit import https_gateway, snapshot

TWO_GATEWAYS = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: a}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [a.example.com]
  - port: {number: 8443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a-cert}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: b}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: [b.example.com]
    tls: {httpsRedirect: true}
  - port: {number: 8443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: MUTUAL, credentialName: b-cert}
"""


def test_servers_on_one_port_share_a_listener() -> None:
    """Two gateways' servers on 8080 become one HTTP listener with one route table."""
    snap = snapshot(TWO_GATEWAYS)
    by_port = {ls.port: ls for ls in snap.listeners}
    assert sorted(by_port) == [8080, 8443]
    http = by_port[8080]
    assert http.protocol is ListenerProtocol.HTTP
    assert {s.route_table for s in http.servers} == {"http.8080"}


def test_https_servers_keep_their_own_route_tables_and_tls() -> None:
    """Each HTTPS server has its own route table (selected by SNI) and TLS settings."""
    https = next(ls for ls in snapshot(TWO_GATEWAYS).listeners if ls.port == 8443)
    assert [s.route_table for s in https.servers] == [
        "https.8443.default.a.1",
        "https.8443.default.b.1",
    ]
    modes = [s.tls.mode for s in https.servers if s.tls is not None]
    assert modes == [ServerTlsMode.SIMPLE, ServerTlsMode.MUTUAL]
    mutual = https.servers[1].tls
    assert mutual is not None
    assert mutual.ca_file == "/certs/b-cert/ca.crt"


def test_https_redirect_server_redirects_without_a_virtual_service() -> None:
    """A server with httpsRedirect answers every request for its hosts with a 301."""
    table = snapshot(TWO_GATEWAYS).route_tables["http.8080"]
    vh = table.find_virtual_host("b.example.com")
    assert vh is not None
    [entry] = vh.routes
    assert entry.rule_index == -1
    assert table.find_virtual_host("a.example.com") is None  # no VirtualService binds a.example.com


def test_first_of_several_certificate_sources_is_served() -> None:
    """``credentialNames`` (RSA + ECDSA in Istio): the first credential is served."""
    text = https_gateway("{mode: SIMPLE, credentialNames: [rsa-cert, ecdsa-cert]}")
    tls = snapshot(text).listeners[0].servers[0].tls
    assert tls is not None
    assert tls.cert_file == "/certs/rsa-cert/tls.crt"
