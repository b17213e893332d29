"""Functional: the HTTP/1.1 codec defects of issue 9 (3, 4, 6, 7, 8, 9), each on real sockets.

3: pipelining is bounded (the client is paused past the cap) and still answered in order;
4: a client that half-closes after its request gets its response, then the close;
6: bytes an upstream sends beyond its response never reach another request;
7: an HTTP/1.0 client gets a chunked upstream body de-chunked, ended by the close;
8: a Host outside the RFC 3986 grammar is 400 and never forwarded;
9: Upgrade on an HTTP/1.0 request is ignored (RFC 9110 §7.8).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway_core.proxy.downstream import DownstreamProtocol
from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    connect,
    is_closed,
    metric_samples,
    read_request,
    read_response,
    send_raw,
)
from tests.helpers import GatewayHarness

ROUTE = "  - route: [{destination: {host: up.svc}}]"
PIPELINE_CAP = 32
"""At most this many pipelined requests wait behind the one being answered (aiohttp's cap)."""


async def start(gateway: Callable[..., Any], upstream_port: int) -> tuple[int, GatewayHarness]:
    port = free_port()
    harness = await gateway(config(port, ROUTE, {"up.svc": [upstream_port]}))
    return port, harness


async def echo_path(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(req.target), req.target))
    return True


# -- defect 3: bounded pipelining -------------------------------------------------------------
class RecordingDeque(collections.deque[Any]):
    """The connection's queue of pipelined exchanges, remembering its longest length."""

    longest = 0

    def append(self, item: Any) -> None:
        super().append(item)
        self.longest = max(self.longest, len(self))


async def only_connection(harness: GatewayHarness) -> DownstreamProtocol:
    connections = harness.gateway.runtime.connections
    async with asyncio.timeout(5):
        while len(connections) != 1:  # noqa: ASYNC110 (a bounded poll of gateway state)
            await asyncio.sleep(0.005)
    (conn,) = connections
    return conn


async def test_pipelined_burst_is_bounded_and_answered_in_order(
    gateway: Callable[..., Any],
) -> None:
    """2000 GETs in one write (54 KB): never more than the cap queued at once, and all 2000
    answers arrive in request order."""
    count = 2000
    async with capture_upstream(echo_path) as up:
        port, harness = await start(gateway, up.port)
        data = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(count))
        async with connect(port) as (reader, writer):
            conn = await only_connection(harness)
            queue = conn.queue = RecordingDeque()
            writer.write(data)
            bodies = [(await read_response(reader, within=30)).body for _ in range(count)]
    assert bodies == [b"/%d" % i for i in range(count)]
    assert 0 < queue.longest <= PIPELINE_CAP
    assert len(up.requests) == count


# -- defect 4: half-close ----------------------------------------------------------------------
async def test_half_closed_client_gets_its_responses_then_the_close(
    gateway: Callable[..., Any],
) -> None:
    """shutdown(SHUT_WR) after complete requests: every response owed is written, then the
    gateway closes."""
    async with capture_upstream(echo_path) as up:
        port, _ = await start(gateway, up.port)
        for requests in ([b"/one"], [b"/a", b"/b"]):
            async with connect(port) as (reader, writer):
                writer.write(b"".join(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % p for p in requests))
                writer.write_eof()
                bodies = [(await read_response(reader)).body for _ in requests]
                assert bodies == requests
                assert await is_closed(reader)


@pytest.mark.parametrize(
    "partial",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12",
    ],
)
async def test_half_close_mid_request_is_a_client_abort(
    gateway: Callable[..., Any], partial: bytes
) -> None:
    """An EOF inside a request head or body: no response, the connection closes, and no
    complete request reaches the upstream."""
    async with capture_upstream(echo_path) as up:
        port, _ = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            writer.write(partial)
            writer.write_eof()
            async with asyncio.timeout(5):
                rest = await reader.read(-1)
        assert rest == b""
        assert up.requests == []


# -- defect 6: upstream bytes nobody asked for -------------------------------------------------
@contextlib.asynccontextmanager
async def overanswering_pod(extra_after: bytes) -> AsyncIterator[dict[str, Any]]:
    """A raw pod that answers each request with its real response and, in the same write, a
    second one nobody asked for. Records the targets it was asked per connection."""
    seen: dict[str, Any] = {"connections": []}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        targets: list[bytes] = []
        seen["connections"].append(targets)
        with contextlib.suppress(ConnectionError):
            while (req := await read_request(reader)) is not None:
                targets.append(req.target)
                if extra_after == b"204":
                    real = b"HTTP/1.1 204 No Content\r\nx-target: %s\r\n\r\n" % req.target
                else:
                    real = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (
                        len(req.target),
                        req.target,
                    )
                writer.write(real + b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    seen["port"] = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()


def answer(resp: Any) -> bytes:
    return resp.body if resp.status == 200 else resp.header(b"x-target") or b"?"


@pytest.mark.parametrize("extra_after", [b"200", b"204"])
@pytest.mark.parametrize("pipelined", [True, False])
async def test_extra_upstream_response_never_reaches_the_next_request(
    gateway: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    extra_after: bytes,
    pipelined: bool,
) -> None:
    """A pod that sends a second response nobody asked for (after a 200 or a 204): that
    connection is closed and counted; the client's next request gets a real answer from a
    fresh connection, never "POISON"."""
    async with overanswering_pod(extra_after) as pod:
        port, harness = await start(gateway, pod["port"])
        requests = [
            b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /second HTTP/1.1\r\nHost: h\r\n\r\n",
        ]
        async with connect(port) as (reader, writer):
            if pipelined:
                writer.write(b"".join(requests))
                got = [await read_response(reader) for _ in requests]
            else:
                got = []
                for request in requests:
                    writer.write(request)
                    got.append(await read_response(reader))
        assert [answer(r) for r in got] == [b"/first", b"/second"]
        assert pod["connections"] == [[b"/first"], [b"/second"]]
        metrics = await metric_samples(harness.admin)
        assert (
            metrics[("gateway_upstream_cx_extra_data_total", (("cluster", "outbound|80||up.svc"),))]
            == 2
        )
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("more data than specified" in r.getMessage() for r in warnings)


# -- defect 7: HTTP/1.0 clients and chunked upstream bodies ------------------------------------
async def chunked(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    return True


@pytest.mark.parametrize("keep_alive", [False, True])
async def test_http10_client_gets_unframed_body_then_close(
    gateway: Callable[..., Any], keep_alive: bool
) -> None:
    """RFC 9112 §6.1: no chunked framing for HTTP/1.0; the body is the de-chunked bytes and
    the close ends it, with or without ``Connection: keep-alive``."""
    async with capture_upstream(chunked) as up:
        port, _ = await start(gateway, up.port)
        extra = b"Connection: keep-alive\r\n" if keep_alive else b""
        async with connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.0\r\nHost: h\r\n" + extra + b"\r\n")
            async with asyncio.timeout(5):
                raw = await reader.read(-1)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    fields = head.lower()
    assert b"transfer-encoding" not in fields
    assert b"connection: close" in fields
    assert body == b"hello world"


# -- defect 8: Host grammar --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "ok"),
    [
        (b'h<x>"', False),
        (b"h{x}", False),
        (b"h|x", False),
        (b"h^", False),
        (b"h%zz", False),
        (b"[::1", False),
        (b"[g::1]", False),
        (b"h", True),
        (b"api.example.com:8080", True),
        (b"[::1]:8080", True),
        (b"10.0.0.1", True),
        (b"h_x~y", True),
    ],
)
async def test_host_outside_the_uri_grammar_is_400(
    gateway: Callable[..., Any], host: bytes, ok: bool
) -> None:
    """RFC 9112 §3.2 / RFC 3986: reg-name, IP-literal or IPv4 and an optional port; anything
    else is 400 and nothing is forwarded."""
    async with capture_upstream() as up:
        port, _ = await start(gateway, up.port)
        (resp,), _ = await send_raw(
            port, b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", close_wait=0
        )
        forwarded = [r.header(b"host") for r in up.requests]
    if ok:
        assert resp.status == 200
        assert forwarded == [host]
    else:
        assert resp.status == 400
        assert forwarded == []


# -- defect 9: Upgrade on HTTP/1.0 -------------------------------------------------------------
async def test_upgrade_on_http10_is_ignored(gateway: Callable[..., Any]) -> None:
    """RFC 9110 §7.8: an HTTP/1.0 request asking for a WebSocket is proxied as a plain request;
    the pod (which would switch protocols when asked) never sees Upgrade."""

    async def switch_when_asked(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if req.header(b"upgrade") is not None:
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n"
            )
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain")
        return True

    async with capture_upstream(switch_when_asked) as up:
        port, _ = await start(gateway, up.port)
        (resp,), closed = await send_raw(
            port,
            b"GET /ws HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        forwarded = list(up.requests)
    assert (resp.status, resp.body) == (200, b"plain")
    assert closed
    assert len(forwarded) == 1
    names = {n for n, _ in forwarded[0].headers}
    assert not names & {b"upgrade", b"connection"}


async def test_upgrade_with_a_body_is_never_parsed_as_a_second_request(
    gateway: Callable[..., Any],
) -> None:
    """llhttp stops at the head of any request that asks to upgrade; when the gateway does
    not upgrade (h2c, or HTTP/1.0), a body must never be read as the next request: such a
    request is refused with 400 and nothing reaches the upstream."""
    smuggled = b"GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
    async with capture_upstream() as up:
        port, _ = await start(gateway, up.port)
        for version, upgrade in ((b"1.1", b"h2c"), (b"1.0", b"websocket")):
            head = (
                b"POST / HTTP/" + version + b"\r\nHost: h\r\nConnection: Upgrade\r\n"
                b"Upgrade: " + upgrade + b"\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
            )
            responses, _ = await send_raw(port, head + smuggled, count=2, close_wait=0.5)
            assert [r.status for r in responses] == [400]
        assert up.requests == []
