"""Functional: TLS termination (SNI certificate choice, MUTUAL) and WebSocket upgrades."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    lab_certs,
    read_response,
    send_raw,
    tls_gateway_yaml,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab_certs(tmp_path_factory.mktemp("pki"))


def client_context(pki: Path, *, client_cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client_cert:
        ctx.load_cert_chain(pki / "tier1-client" / "tls.crt", pki / "tier1-client" / "tls.key")
    return ctx


async def tls_get(
    port: int, sni: str, ctx: ssl.SSLContext, host: str | None = None
) -> tuple[bytes, dict[str, Any]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    try:
        cert = writer.get_extra_info("peercert")
        writer.write(f"GET / HTTP/1.1\r\nHost: {host or sni}\r\n\r\n".encode())
        resp = await read_response(reader)
        return resp.body, cert
    finally:
        writer.close()


def common_name(cert: dict[str, Any]) -> str:
    return str(next(v for rdn in cert["subject"] for k, v in rdn if k == "commonName"))


async def test_sni_selects_certificate_and_server(gateway: Callable[..., Any], pki: Path) -> None:
    """Two certificates on one HTTPS port: SNI picks the certificate (verified against the lab
    CA for that name) and the server's routes."""
    http_port, https_port = free_port(), free_port()
    await gateway(tls_gateway_yaml(http_port, https_port), cert_dir=str(pki))
    ctx = client_context(pki)
    body, cert = await tls_get(https_port, "bookinfo.example.com", ctx)
    assert body == b"bookinfo"
    assert common_name(cert) == "bookinfo.example.com"
    body, cert = await tls_get(https_port, "httpbin.example.com", ctx)
    assert body == b"httpbin"
    assert common_name(cert) == "httpbin.example.com"


async def test_tls_minimum_version_is_1_2(gateway: Callable[..., Any], pki: Path) -> None:
    """A TLS 1.1 client cannot complete a handshake."""
    http_port, https_port = free_port(), free_port()
    await gateway(tls_gateway_yaml(http_port, https_port), cert_dir=str(pki))
    ctx = client_context(pki)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # A client able to speak TLS 1.1 (it completes such a handshake with a server that
        # allows it), so only the gateway's minimum can make this fail.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await tls_get(https_port, "bookinfo.example.com", ctx)


async def test_mutual_tls_requires_a_client_certificate(
    gateway: Callable[..., Any], pki: Path
) -> None:
    """A MUTUAL server serves a client presenting a certificate from its CA and refuses one
    without a certificate."""
    http_port, https_port, mtls_port = free_port(), free_port(), free_port()
    await gateway(tls_gateway_yaml(http_port, https_port, mutual_port=mtls_port), cert_dir=str(pki))
    with_cert = client_context(pki, client_cert=True)
    body, _ = await tls_get(mtls_port, "bookinfo.example.com", with_cert, host="mtls.example.com")
    assert body == b"bookinfo"
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError)):
        await tls_get(mtls_port, "bookinfo.example.com", client_context(pki), "mtls.example.com")


async def test_websocket_upgrade_through_gateway(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """A WebSocket upgrade passes through: text and binary frames echo both ways, and a close
    from the client ends the tunnel."""
    pod = await pods("echo")
    port = free_port()
    await gateway(
        config(port, "  - route: [{destination: {host: ws.svc}}]", {"ws.svc": [pod.port]})
    )
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
            await ws.send_str("hello")
            assert (await ws.receive(timeout=5)).data == "hello"
            await ws.send_bytes(b"\x00\x01" * 40000)
            assert (await ws.receive(timeout=5)).data == b"\x00\x01" * 40000
        assert ws.closed
        # The gateway still serves plain requests afterwards.
        async with session.get(f"http://127.0.0.1:{port}/after") as r:
            assert r.status == 200


async def test_h2c_upgrade_is_stripped(gateway: Callable[..., Any]) -> None:
    """``Upgrade: h2c`` (P46) is not forwarded: the upstream sees a plain HTTP/1.1 request and
    the client an ordinary 200."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with capture_upstream(respond) as up:
        port = free_port()
        await gateway(
            config(port, "  - route: [{destination: {host: up.svc}}]", {"up.svc": [up.port]})
        )
        data = (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        (resp,), closed = await send_raw(port, data, close_wait=0.2)
    assert (resp.status, resp.body) == (200, b"ok")
    assert not closed
    (req,) = up.requests
    names = {n for n, _ in req.headers}
    assert not names & {b"upgrade", b"http2-settings", b"connection"}


async def test_refused_websocket_upgrade_is_an_ordinary_response(
    gateway: Callable[..., Any],
) -> None:
    """When the upstream answers an Upgrade request without 101, the client gets that answer
    and the connection closes (its framing after a refused upgrade is unknown)."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
        return True

    async with capture_upstream(respond) as up:
        port = free_port()
        await gateway(
            config(port, "  - route: [{destination: {host: up.svc}}]", {"up.svc": [up.port]})
        )
        data = (
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        (resp,), closed = await send_raw(port, data)
    assert (resp.status, resp.body) == (403, b"no")
    assert closed
    (req,) = up.requests
    assert req.header(b"upgrade") == b"websocket"
