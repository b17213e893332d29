"""Functional: per-route policies in the data path: fault injection, mirroring and CORS."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.functional.support import (
    CaptureUpstream,
    capture_upstream,
    config,
    get,
    send_raw,
)


def _log(harness: Any) -> list[dict[str, Any]]:
    assert harness.gateway.runtime.access_log.sync(), "the access log writer did not catch up"
    return [json.loads(x) for x in Path(harness.settings.access_log).read_text().splitlines()]


async def test_fault_abort_percentage(gateway: Callable[..., Any], tmp_path: Path) -> None:
    """fault.abort with 30% aborts about 30 of 200 requests (seeded) with its status and flag
    FI; the others reach the upstream."""
    async with capture_upstream() as up:
        rules = """\
  - fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
    route: [{destination: {host: up.svc}}]"""
        port = free_port()
        harness = await gateway(
            config(port, rules, {"up.svc": [up.port]}), access_log=str(tmp_path / "a.log")
        )
        statuses = [(await get(port, "/")).status for _ in range(200)]
    aborted = statuses.count(418)
    assert 40 <= aborted <= 80
    assert statuses.count(200) == 200 - aborted == len(up.requests)
    flags = [line["flags"] for line in _log(harness)]
    assert flags.count("FI") == aborted


async def test_fault_delay_then_forward(gateway: Callable[..., Any], tmp_path: Path) -> None:
    """fault.delay at 100% delays every request (flag DI) and then forwards it; a client that
    resets its connection during the delay never reaches the upstream. (A client that only
    half-closes still gets its answer: ``test_h1_codec_defects``.)"""
    async with capture_upstream() as up:
        rules = """\
  - fault: {delay: {fixedDelay: 0.3s, percentage: {value: 100}}}
    route: [{destination: {host: up.svc}}]"""
        port = free_port()
        harness = await gateway(
            config(port, rules, {"up.svc": [up.port]}), access_log=str(tmp_path / "d.log")
        )
        resp = await get(port, "/")
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /gone HTTP/1.1\r\nHost: h\r\n\r\n")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # with a zero linger time: a reset, not a half-close
        await asyncio.sleep(0.5)
    assert resp.status == 200
    assert [r.target for r in up.requests] == [b"/"]
    lines = _log(harness)
    assert lines[0]["flags"] == "DI"
    assert "DC" in lines[1]["flags"]


async def test_mirror_sends_shadow_copy(gateway: Callable[..., Any]) -> None:
    """mirror: the mirror cluster gets a copy (Host suffixed -shadow before the port, same
    path and body) while the client gets the primary's answer; the mirror's answer is
    discarded and a dead mirror does not affect the client."""
    primary = await CaptureUpstream().start()

    async def mirror_reply(req: Any, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail")
        return True

    shadow = await CaptureUpstream(mirror_reply).start()
    dead = free_port()
    try:
        rules = """\
  - match: [{uri: {prefix: /m}}]
    route: [{destination: {host: up.svc}}]
    mirror: {host: shadow.svc}
  - match: [{uri: {prefix: /half}}]
    route: [{destination: {host: up.svc}}]
    mirror: {host: shadow.svc}
    mirrorPercentage: {value: 0}
  - route: [{destination: {host: up.svc}}]
    mirror: {host: dead.svc}
"""
        port = free_port()
        services = {"up.svc": [primary.port], "shadow.svc": [shadow.port], "dead.svc": [dead]}
        await gateway(config(port, rules, services))
        data = b"POST /m/x?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nContent-Length: 5\r\n\r\nhello"
        (resp,), _ = await send_raw(port, data, close_wait=0)
        (never,), _ = await send_raw(port, b"GET /half HTTP/1.1\r\nHost: h\r\n\r\n", close_wait=0)
        (dead_mirror,), _ = await send_raw(
            port, b"GET /d HTTP/1.1\r\nHost: h\r\n\r\n", close_wait=0
        )
        async with asyncio.timeout(5):
            await shadow.received.wait()
        await asyncio.sleep(0.1)
    finally:
        await primary.close()
        await shadow.close()
    assert (resp.status, resp.body) == (200, b"ok")
    assert (never.status, dead_mirror.status) == (200, 200)
    assert [r.target for r in primary.requests] == [b"/m/x?q=1", b"/half", b"/d"]
    (copy,) = shadow.requests
    assert copy.target == b"/m/x?q=1"
    assert copy.header(b"host") == b"a.example-shadow:8080"
    assert copy.body == b"hello"
    assert copy.header(b"x-request-id") == primary.requests[0].header(b"x-request-id")


CORS_RULES = """\
  - corsPolicy:
      allowOrigins: [{exact: "https://app.example"}, {regex: "https://.*\\\\.trusted\\\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: up.svc}}]
"""


async def test_cors_preflight_answered_locally(gateway: Callable[..., Any]) -> None:
    """A CORS preflight from an allowed origin is answered by the gateway (Envoy CORS
    filter): 200 with allow-origin/methods/headers/max-age/credentials; an unknown origin's
    preflight is forwarded upstream without CORS headers."""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(config(port, CORS_RULES, {"up.svc": [up.port]}))
        (pre,), _ = await send_raw(
            port,
            b"OPTIONS /api HTTP/1.1\r\nHost: h\r\nOrigin: https://x.trusted.example\r\n"
            b"Access-Control-Request-Method: POST\r\n\r\n",
            close_wait=0,
        )
        (other,), _ = await send_raw(
            port,
            b"OPTIONS /api HTTP/1.1\r\nHost: h\r\nOrigin: https://evil.example\r\n"
            b"Access-Control-Request-Method: POST\r\n\r\n",
            close_wait=0,
        )
    assert pre.status == 200
    assert pre.header(b"access-control-allow-origin") == b"https://x.trusted.example"
    assert pre.header(b"access-control-allow-methods") == b"GET,POST"
    assert pre.header(b"access-control-allow-headers") == b"x-custom,content-type"
    assert pre.header(b"access-control-max-age") == b"86400"
    assert pre.header(b"access-control-allow-credentials") == b"true"
    assert other.status == 200
    assert other.header(b"access-control-allow-origin") is None
    assert [r.method for r in up.requests] == [b"OPTIONS"]


async def test_cors_headers_on_actual_responses(gateway: Callable[..., Any]) -> None:
    """An actual cross-origin request from an allowed origin gets allow-origin (the origin),
    allow-credentials and expose-headers on the upstream's response; other origins and
    same-origin requests get none."""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(config(port, CORS_RULES, {"up.svc": [up.port]}))
        allowed = await get(port, "/api", headers={"Origin": "https://app.example"})
        denied = await get(port, "/api", headers={"Origin": "https://app.example.evil"})
        plain = await get(port, "/api")
    assert allowed.header(b"access-control-allow-origin") == b"https://app.example"
    assert allowed.header(b"access-control-allow-credentials") == b"true"
    assert allowed.header(b"access-control-expose-headers") == b"x-exposed"
    for resp in (denied, plain):
        assert resp.status == 200
        assert resp.header(b"access-control-allow-origin") is None
    assert len(up.requests) == 3
