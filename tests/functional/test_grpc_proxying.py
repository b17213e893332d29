"""Functional: gRPC through real gateways on 127.0.0.1 with real grpcio clients and pods:
HTTP/2 both sides, trailers both ways, all four RPC kinds, request-level balancing, and
Tier-1 → Tier-2 over HTTP/2 with TLS ALPN."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import free_port
from tests.functional.grpc_pods import EchoClient, GrpcPod
from tests.functional.support import gateway_yaml, lab_certs, service_entry

ROUTE = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: echo.grpc.local}}]
"""


async def _tier2(gateway: Callable[..., Any], pods: list[GrpcPod], **settings: Any) -> int:
    port = free_port()
    yaml = (
        gateway_yaml(port)
        + ROUTE
        + service_entry("echo.grpc.local", [p.port for p in pods], protocol="GRPC")
    )
    await gateway(yaml, **settings)
    return port


async def test_all_four_rpc_kinds_and_trailers(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any]
) -> None:
    """Unary, server streaming, client streaming and bidirectional streaming through the
    gateway (h2c in, HTTP/2 to the pod); trailing metadata and error statuses pass."""
    pods = await grpc_pods(1)
    port = await _tier2(gateway, pods)
    client = EchoClient(f"127.0.0.1:{port}")
    try:
        call = client.unary(b"hi", timeout=10)
        assert await call == b"pod0:hi"
        assert ("x-pod", "pod0") in tuple(await call.trailing_metadata())
        assert await call.code() == grpc.StatusCode.OK
        got = [m async for m in client.server_stream(b"5", timeout=10)]
        assert got == [b"pod0:%d" % i for i in range(5)]

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(50):
                yield b"x" * 10000

        assert await client.client_stream(chunks(), timeout=10) == b"pod0:500000"
        bidi = client.bidi(timeout=10)
        for word in (b"a", b"b", b"c"):
            await bidi.write(word)
            assert await bidi.read() == b"pod0:" + word
        await bidi.done_writing()
        assert await bidi.code() == grpc.StatusCode.OK
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await client.unary(b"x", metadata=(("fail-with", "NOT_FOUND"),), timeout=10)
        assert failed.value.code() == grpc.StatusCode.NOT_FOUND
        assert failed.value.details() == "failed on purpose"
    finally:
        await client.close()


async def test_one_channel_is_balanced_per_request(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any]
) -> None:
    """Seed 002: one client channel (one HTTP/2 connection) spreads its calls over every pod,
    because the gateway balances each request."""
    pods = await grpc_pods(3)
    port = await _tier2(gateway, pods)
    client = EchoClient(f"127.0.0.1:{port}")
    try:
        counts: collections.Counter[bytes] = collections.Counter()
        for i in range(300):
            reply = await client.unary(b"%d" % i, timeout=10)
            counts[reply.split(b":")[0]] += 1
    finally:
        await client.close()
    assert sum(counts.values()) == 300
    for pod in pods:
        share = counts[pod.name.encode()] / 300
        assert abs(share - 1 / 3) <= 0.10, counts


async def test_tier1_to_tier2_over_http2_with_tls_alpn(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any], tmp_path: Path
) -> None:
    """Tier-1 (h2c from the client) → TLS with ALPN h2 → Tier-2 → pods: gRPC end to end."""
    pki = lab_certs(tmp_path / "pki")
    pods = await grpc_pods(2)
    t2_port = free_port()
    t2_yaml = (
        gateway_yaml(t2_port, credential="bookinfo-credential")
        + ROUTE
        + service_entry("echo.grpc.local", [p.port for p in pods], protocol="GRPC")
    )
    await gateway(t2_yaml, cert_dir=str(pki))
    t1_port = free_port()
    t1_yaml = (
        gateway_yaml(t1_port)
        + ROUTE.replace("echo.grpc.local", "tier2.local")
        + service_entry("tier2.local", [t2_port], protocol="HTTP2")
        + f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tier2}}
spec:
  host: tier2.local
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: {pki / "ca.crt"}, sni: bookinfo.example.com}}
"""
    )
    await gateway(t1_yaml, tier="tier1")
    client = EchoClient(f"127.0.0.1:{t1_port}", authority="echo.example.com")
    try:
        seen = set()
        for i in range(20):
            reply = await client.unary(b"%d" % i, timeout=10)
            seen.add(reply.split(b":")[0])
        assert seen == {b"pod0", b"pod1"}
        got = [m async for m in client.server_stream(b"3", timeout=10)]
        assert len(got) == 3
    finally:
        await client.close()
