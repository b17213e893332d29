"""Control path: the protocol spoken to each cluster, chosen as Istio chooses it."""

from __future__ import annotations

import pytest

from gateway_core.snapshot import UNLIMITED, UpstreamProtocol
from tests.gateway_core.compiler.compiler_testkit import GATEWAY, snapshot, virtual_service


def _config(port_line: str, pool: str = "") -> str:
    rule = (
        f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc}}
spec:
  host: svc.example.internal
  trafficPolicy:
    connectionPool: {pool}
"""
        if pool
        else ""
    )
    return (
        GATEWAY
        + virtual_service(
            "  - route: [{destination: {host: svc.example.internal, port: {number: 80}}}]"
        )
        + f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc}}
spec:
  hosts: [svc.example.internal]
  ports:
  - {port_line}
  resolution: STATIC
  endpoints:
  - {{address: 10.0.0.1}}
"""
        + rule
    )


KEY = "outbound|80||svc.example.internal"


@pytest.mark.parametrize(
    ("port_line", "expected"),
    [
        ("{number: 80, name: http, protocol: HTTP}", UpstreamProtocol.HTTP1),
        ("{number: 80, name: http2, protocol: HTTP2}", UpstreamProtocol.HTTP2),
        ("{number: 80, name: api, protocol: GRPC}", UpstreamProtocol.HTTP2),
        ("{number: 80, name: web, protocol: GRPC-Web}", UpstreamProtocol.HTTP2),
        ("{number: 80, name: grpc-demo}", UpstreamProtocol.HTTP2),
        ("{number: 80, name: http2}", UpstreamProtocol.HTTP2),
        ("{number: 80, name: http-web}", UpstreamProtocol.HTTP1),
        ("{number: 80, name: grpc, protocol: HTTP}", UpstreamProtocol.HTTP1),
    ],
)
def test_port_protocol_field_then_name_prefix(port_line: str, expected: UpstreamProtocol) -> None:
    """``protocol`` wins; without it the port name's prefix names the protocol."""
    assert snapshot(_config(port_line)).clusters[KEY].protocol is expected


def test_h2_upgrade_policy_and_use_client_protocol() -> None:
    http = "{number: 80, name: http, protocol: HTTP}"
    upgrade = snapshot(_config(http, "{http: {h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 7}}"))
    assert upgrade.clusters[KEY].protocol is UpstreamProtocol.HTTP2
    assert upgrade.clusters[KEY].max_concurrent_streams == 7
    client = snapshot(_config(http, "{http: {useClientProtocol: true}}"))
    assert client.clusters[KEY].protocol is UpstreamProtocol.CLIENT
    plain = snapshot(_config(http, "{http: {h2UpgradePolicy: DO_NOT_UPGRADE}}"))
    assert plain.clusters[KEY].protocol is UpstreamProtocol.HTTP1
    assert plain.clusters[KEY].max_concurrent_streams == UNLIMITED
