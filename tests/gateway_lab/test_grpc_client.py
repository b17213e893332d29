"""Tests: ``gateway-lab grpc call|health`` as a real subprocess against real gRPC demo pods."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import trustme

from gateway_lab.demo_pod import PodConfig
from gateway_lab.grpc_client import authority_host
from gateway_lab.grpc_pod import DemoService, GrpcPod, pod_message, start_grpc_pod
from gateway_lab.proto import demo_pb2_grpc
from gateway_lab.tcp_relay import TcpRelay
from tests.conftest import free_port

CLI_TIMEOUT = 60.0
CONFIG = PodConfig(role="grpc", cluster="cluster-9", pod="grpc-demo-v1-0", version="v1")


async def cli(*args: str) -> tuple[int, str, str]:
    """``gateway-lab ARGS`` in a subprocess; the loop keeps serving the in-process pods."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway_lab.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def pod() -> AsyncIterator[GrpcPod]:
    started = await start_grpc_pod(CONFIG)
    try:
        yield started
    finally:
        await started.cleanup(grace=0.5)


async def test_hello_calls_print_each_reply_and_the_count_per_pod(pod: GrpcPod) -> None:
    """--count 6: six replies naming the pod, the selector metadata reached it, 6 per pod."""
    code, out, err = await cli(
        "grpc", "call", "--count", "6", "--selector", "cluster-2", "--show-metadata",
        f"127.0.0.1:{pod.port}",
    )  # fmt: skip
    assert code == 0, err
    replies = re.findall(
        r"^reply (\d+): Hello, world, from grpc-demo-v1-0 \(cluster-9\) ", out, re.M
    )
    assert replies == [str(i) for i in range(1, 7)]
    assert out.count("\n  x-cluster-selector: cluster-2\n") == 6
    assert re.search(r"^replies per pod \(6 replies over one channel\):$", out, re.M)
    assert re.search(r"^  grpc-demo-v1-0\s+cluster-9\s+6$", out, re.M)
    assert pod.demo.calls == 6


@pytest.mark.parametrize(
    ("method", "count", "lines"),
    [
        ("server-stream", 3, ["reply 1:", "reply 2:", "reply 3:"]),
        ("client-stream", 4, ["reply 1:"]),
        ("bidi", 3, ["reply 1:", "reply 2:", "reply 3:"]),
    ],
)
async def test_streaming_methods(pod: GrpcPod, method: str, count: int, lines: list[str]) -> None:
    """Each streaming kind makes one call; replies as the method defines them."""
    code, out, err = await cli("grpc", "call", "--method", method, "--count", str(count),
                               f"127.0.0.1:{pod.port}")  # fmt: skip
    assert code == 0, err
    assert [ln.split(" Hello")[0] for ln in out.splitlines() if ln.startswith("reply ")] == [
        ln.removesuffix(":") + ":" for ln in lines
    ]
    if method == "client-stream":
        assert "4 received]" in out
    assert pod.demo.calls == 1


async def test_every_call_of_a_run_shares_one_connection(pod: GrpcPod) -> None:
    """Twenty unary calls through a TCP relay arrive as one relayed connection."""
    relay = TcpRelay([("127.0.0.1", pod.port)])
    host, port = await relay.start()
    try:
        code, _, err = await cli("grpc", "call", "--count", "20", f"{host}:{port}")
    finally:
        await relay.close()
    assert code == 0, err
    assert (sum(relay.connections.values()), pod.demo.calls) == (1, 20)


async def test_failed_call_prints_status_and_details_without_traceback() -> None:
    """Nothing listening: exit 1, 'hello failed: UNAVAILABLE: ...', no traceback."""
    code, out, err = await cli("grpc", "call", "--timeout", "5", f"127.0.0.1:{free_port()}")
    assert code == 1
    assert re.search(r"^gateway-lab grpc: hello failed: UNAVAILABLE: \S", err, re.M), err
    assert "Traceback" not in err + out
    assert "replies per pod (0 replies over one channel):" in out


async def test_health_prints_serving(pod: GrpcPod) -> None:
    """grpc health: SERVING and exit 0; an unknown service is NOT_FOUND and exit 1."""
    assert await cli("grpc", "health", f"127.0.0.1:{pod.port}") == (0, "SERVING\n", "")
    code, _, err = await cli("grpc", "health", "--service", "x.Y", f"127.0.0.1:{pod.port}")
    assert (code, "health check failed: NOT_FOUND" in err) == (1, True)


@pytest.fixture
async def tls_pod(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """The demo service over TLS with a certificate for grpc.example.com only."""
    ca = trustme.CA()
    leaf = ca.issue_cert("grpc.example.com")
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    credentials = grpc.ssl_server_credentials(
        [(leaf.private_key_pem.bytes(), b"".join(c.bytes() for c in leaf.cert_chain_pems))]
    )
    server = grpc.aio.server()
    demo_pb2_grpc.add_DemoServicer_to_server(DemoService(pod_message(CONFIG)), server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port, cafile
    finally:
        await server.stop(0.5)


async def test_tls_authority_names_the_certificate(tls_pod: tuple[int, Path]) -> None:
    """--tls --authority grpc.example.com verifies that name at 127.0.0.1; without it, it fails."""
    port, cafile = tls_pod
    args = ["grpc", "call", "--tls", "--cacert", str(cafile), "--timeout", "5"]
    code, out, err = await cli(*args, "--authority", "grpc.example.com:443", f"127.0.0.1:{port}")
    assert code == 0, err
    assert "from grpc-demo-v1-0 (cluster-9)" in out
    code, _, err = await cli(*args, f"127.0.0.1:{port}")
    assert code == 1
    assert "hello failed: UNAVAILABLE" in err


async def test_cacert_without_tls_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = await cli("grpc", "call", "--cacert", str(tmp_path), "127.0.0.1:1")
    assert (code, err.strip()) == (2, "gateway-lab grpc: --cacert needs --tls")


def test_authority_host_strips_the_port() -> None:
    assert authority_host("grpc.example.com:8443") == "grpc.example.com"
    assert authority_host("grpc.example.com") == "grpc.example.com"
    assert authority_host("[::1]:8443") == "::1"
