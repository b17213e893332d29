"""Functional: HTTP/2 from clients (TLS with ALPN h2, and h2c with prior knowledge) through a
real gateway on 127.0.0.1 to HTTP/1.1 pods: real curl, and an h2 client that controls flow
control."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.h2client import H2Client
from tests.functional.support import config, lab_certs

CURL = shutil.which("curl")
NGHTTP = shutil.which("nghttp")
RULES = """  - match: [{uri: {prefix: /echo}}]
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {prefix: /bytes}}]
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {prefix: /upload}}]
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {prefix: /delay}}]
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "teapot"}}"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab_certs(tmp_path_factory.mktemp("pki"))


async def _curl(*args: str) -> tuple[int, str, str]:
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL, "-sS", "--max-time", "20", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _tls_gateway(gateway: Callable[..., Any], pods: Callable[..., Any], pki: Path) -> int:
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    yaml = config(port, RULES, {"echo.local": [pod.port]}, credential="bookinfo-credential")
    await gateway(yaml, cert_dir=str(pki))
    return port


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_curl_http2_over_tls_reaches_http1_pod(
    gateway: Callable[..., Any], pods: Callable[..., Any], pki: Path
) -> None:
    """ALPN picks h2; the pod (HTTP/1.1) sees the request with Host from :authority."""
    port = await _tls_gateway(gateway, pods, pki)
    code, out, err = await _curl(
        "--http2", "--cacert", str(pki / "ca.crt"),
        "--resolve", f"bookinfo.example.com:{port}:127.0.0.1",
        "-H", "x-test: 1", "-w", "\n%{http_version} %{response_code}",
        f"https://bookinfo.example.com:{port}/echo/a?b=1",
    )  # fmt: skip
    assert code == 0, err
    body, _, meta = out.rpartition("\n")
    assert meta == "2 200"
    seen = json.loads(body)
    assert seen["pod"] == "p1"
    assert seen["path"] == "/echo/a"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["host"] == f"bookinfo.example.com:{port}"
    assert headers["x-test"] == "1"
    assert headers["x-forwarded-proto"] == "https"


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
async def test_curl_http2_prior_knowledge_and_refused_upgrade(
    gateway: Callable[..., Any], pods: Callable[..., Any]
) -> None:
    """Plaintext: h2c with prior knowledge is served over HTTP/2; ``Upgrade: h2c`` is not
    acted on (the answer comes over HTTP/1.1)."""
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    url = f"http://127.0.0.1:{port}/echo/x"
    code, out, err = await _curl("--http2-prior-knowledge", "-w", "\n%{http_version}", url)
    assert code == 0, err
    assert out.rpartition("\n")[2] == "2"
    assert json.loads(out.rpartition("\n")[0])["path"] == "/echo/x"
    code, out, err = await _curl("--http2", "-w", "\n%{http_version}", url)
    assert code == 0, err
    assert out.rpartition("\n")[2] == "1.1"
    code, out, err = await _curl(
        "--http2-prior-knowledge", "-w", "%{http_version} %{response_code}", "-o", "/dev/null",
        f"http://127.0.0.1:{port}/direct",
    )  # fmt: skip
    assert (code, out) == (0, "2 418")


async def test_many_streams_on_one_connection_and_request_bodies(
    gateway: Callable[..., Any], pods: Callable[..., Any], pki: Path
) -> None:
    """100 concurrent streams (the advertised limit) on one TLS connection are all answered;
    request bodies arrive whole (sha256 computed by the pod)."""
    port = await _tls_gateway(gateway, pods, pki)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    client = await H2Client.connect(port, tls=ctx, sni="bookinfo.example.com")
    try:
        authority = f"bookinfo.example.com:{port}"
        ids = [client.request("GET", authority, f"/echo/{i}") for i in range(99)]
        body = bytes(range(256)) * 200
        upload = client.request(
            "POST", authority, "/upload", [("content-length", str(len(body)))], end=False
        )
        await client.upload(upload, body)
        for i, stream_id in enumerate(ids):
            response = await client.response(stream_id)
            assert response.status == 200, (client.goaway, response.reset)
            assert json.loads(bytes(response.body))["path"] == f"/echo/{i}"
        response = await client.response(upload)
        assert response.status == 200
        assert json.loads(bytes(response.body)) == {
            "received": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }
    finally:
        await client.close()


async def test_unread_stream_does_not_block_others(
    gateway: Callable[..., Any], pods: Callable[..., Any], pki: Path
) -> None:
    """A stream whose response the client never reads stalls alone: others on the same
    connection complete; once read, it completes whole."""
    port = await _tls_gateway(gateway, pods, pki)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    client = await H2Client.connect(port, tls=ctx, sni="bookinfo.example.com")
    try:
        authority = f"bookinfo.example.com:{port}"
        big = 4 * 1024 * 1024
        slow = client.request("GET", authority, f"/bytes/{big}")
        client.unread.add(slow)
        for i in range(20):
            fast = client.request("GET", authority, f"/echo/fast{i}")
            response = await client.response(fast)
            assert response.status == 200
        slow_response = client.responses[slow]
        assert not slow_response.done.is_set()
        assert len(slow_response.body) <= 65535  # bounded by the stream's window
        client.read_unread(slow)
        done = await client.response(slow, within=30)
        assert done.status == 200
        assert len(done.body) == big
    finally:
        await client.close()


async def test_grpc_request_without_route_gets_trailers_only_unimplemented(
    gateway: Callable[..., Any], pods: Callable[..., Any]
) -> None:
    """Local replies to gRPC requests are trailers-only gRPC errors (HTTP 200): no route is
    UNIMPLEMENTED (12)."""
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    client = await H2Client.connect(port)
    try:
        grpc = [("content-type", "application/grpc"), ("te", "trailers")]
        stream = client.request("POST", "svc.local", "/demo.v1.Demo/Hello", grpc, b"\0\0\0\0\0")
        response = await client.response(stream)
        assert response.status == 200
        assert response.header(b"grpc-status") == b"12"
        assert response.header(b"content-type") == b"application/grpc"
        assert not response.body
    finally:
        await client.close()


@pytest.mark.skipif(NGHTTP is None, reason="nghttp (Debian nghttp2-client) is not installed")
async def test_drain_sends_goaway_and_open_streams_finish(
    gateway: Callable[..., Any], pods: Callable[..., Any]
) -> None:
    """Drain: the client gets GOAWAY(NO_ERROR) and its stream in flight still completes
    (nghttp prints the frames it receives)."""
    assert NGHTTP is not None
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    harness = await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    runtime = harness.gateway.runtime
    proc = await asyncio.create_subprocess_exec(
        NGHTTP, "-v", "-t", "20", f"http://127.0.0.1:{port}/delay/1",
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        # The drain starts once the request is in flight (bounded wait).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not any(c.current is not None for c in runtime.connections):
            assert loop.time() < deadline, "the request never reached the gateway"
            await asyncio.sleep(0.01)
        harness.gateway.begin_drain(0.0)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "recv GOAWAY frame" in text
    assert "error_code=NO_ERROR" in text
    assert ":status: 200" in text
    assert text.index("recv GOAWAY frame") < text.index(":status: 200")
