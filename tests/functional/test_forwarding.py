"""Functional: what the gateway sends upstream and back (headers, framing, connections).

Upstreams here are ``CaptureUpstream`` raw servers, so the exact bytes the gateway forwarded are
checked, and upstream behaviour (framing, interim responses, resets) is scripted per test.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    connect,
    get,
    is_closed,
    read_response,
    send_raw,
)

ROUTE = "  - route: [{destination: {host: up.svc}}]"
UUID4 = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def start(gateway: Callable[..., Any], upstream_port: int, **settings: object) -> int:
    port = free_port()
    await gateway(config(port, ROUTE, {"up.svc": [upstream_port]}), **settings)
    return port


async def test_request_id_generated_and_propagated(gateway: Callable[..., Any]) -> None:
    """x-request-id: a UUID4 is generated when absent; a client's value is forwarded as is."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        await get(port, "/")
        await get(port, "/", headers={"X-Request-Id": "abc-123"})
    first, second = up.requests
    assert UUID4.match(first.header(b"x-request-id") or b"")
    assert second.all(b"x-request-id") == [b"abc-123"]


async def test_forwarding_headers_at_the_edge(gateway: Callable[..., Any]) -> None:
    """X-Forwarded-For gets the client address appended; -Proto is the listener's scheme and
    -Host the client's authority, whatever an untrusted client sent."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        await get(port, "/", host="a.example:81")
        await get(
            port,
            "/",
            headers={
                "X-Forwarded-For": "1.2.3.4",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "evil",
            },
        )
    plain, spoofed = up.requests
    assert plain.all(b"x-forwarded-for") == [b"127.0.0.1"]
    assert plain.header(b"x-forwarded-proto") == b"http"
    assert plain.header(b"x-forwarded-host") == b"a.example:81"
    assert plain.header(b"host") == b"a.example:81"
    assert spoofed.all(b"x-forwarded-for") == [b"1.2.3.4, 127.0.0.1"]
    assert spoofed.all(b"x-forwarded-proto") == [b"http"]
    assert spoofed.all(b"x-forwarded-host") == [b"h"]


async def test_forwarding_headers_behind_a_trusted_hop(gateway: Callable[..., Any]) -> None:
    """With one trusted hop (Tier-2 behind Tier-1), X-Forwarded-Proto/-Host from it are kept."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port, xff_trusted_hops=1)
        await get(port, "/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "orig"})
    (req,) = up.requests
    assert req.all(b"x-forwarded-proto") == [b"https"]
    assert req.all(b"x-forwarded-host") == [b"orig"]


async def test_hop_by_hop_fields_are_not_forwarded(gateway: Callable[..., Any]) -> None:
    """Connection, Keep-Alive, TE, Trailer, Upgrade, Proxy-Connection and every field named in
    Connection are dropped in both directions (RFC 9110 §7.6.1)."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: X-Resp-Hop\r\nX-Resp-Hop: 1\r\n"
            b"Keep-Alive: timeout=5\r\nX-Kept: 1\r\nContent-Length: 2\r\n\r\nok"
        )
        return True

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        data = (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Foo, Upgrade\r\n"
            b"X-Foo: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: foo/1\r\n"
            b"Proxy-Connection: keep-alive\r\nX-Bar: 2\r\n\r\n"
        )
        (resp,), closed = await send_raw(port, data, close_wait=0.2)
    (req,) = up.requests
    names = {n for n, _ in req.headers}
    for hop in (b"connection", b"x-foo", b"keep-alive", b"te", b"trailer", b"upgrade"):
        assert hop not in names
    assert b"proxy-connection" not in names
    assert req.header(b"x-bar") == b"2"
    assert resp.status == 200 and resp.body == b"ok"
    assert resp.header(b"x-resp-hop") is None
    assert resp.header(b"keep-alive") is None
    assert resp.header(b"connection") is None
    assert resp.header(b"x-kept") == b"1"
    assert not closed


async def test_connection_cannot_remove_content_length(gateway: Callable[..., Any]) -> None:
    """``Connection: Content-Length`` is ignored: the body is forwarded with its length (P44)."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        data = (
            b"POST / HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\n"
            b"Content-Length: 5\r\n\r\nhello"
        )
        (resp,), _ = await send_raw(port, data, close_wait=0)
    (req,) = up.requests
    assert resp.status == 200
    assert req.header(b"content-length") == b"5"
    assert req.body == b"hello"


async def test_keep_alive_reuses_upstream_connections(gateway: Callable[..., Any]) -> None:
    """Sequential requests, on one client connection or many, share one upstream connection."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            for _ in range(10):
                writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                assert (await read_response(reader)).status == 200
        for _ in range(10):
            assert (await get(port, "/")).status == 200
    assert len(up.requests) == 20
    assert up.connections == 1


async def test_pipelined_requests_answered_in_order(gateway: Callable[..., Any]) -> None:
    """Pipelined requests (P43) get their responses in request order, each routed on its own,
    even when the first upstream answer is the slowest."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if req.target == b"/slow":
            await asyncio.sleep(0.2)
        body = req.method + b" " + req.target + b" " + req.body
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        return True

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        data = (
            b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n"
            b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            b"GET /admin HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        responses, _ = await send_raw(port, data, count=3, close_wait=0)
    assert [r.body for r in responses] == [b"GET /slow ", b"POST /p abc", b"GET /admin "]


async def test_expect_100_continue(gateway: Callable[..., Any]) -> None:
    """With ``Expect: 100-continue`` the gateway answers 100 itself, the client then sends the
    body, and the upstream gets the body without the Expect field."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            writer.write(
                b"PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
            )
            interim = await read_response(reader)
            assert interim.status == 100
            writer.write(b"data")
            final = await read_response(reader)
    assert final.status == 200
    (req,) = up.requests
    assert req.body == b"data"
    assert req.header(b"expect") is None


async def test_head_and_bodiless_statuses_keep_the_connection(gateway: Callable[..., Any]) -> None:
    """HEAD answers keep Content-Length without a body; 204 and 304 carry no body; the client
    connection stays usable after each."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if req.method == b"HEAD":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
        elif req.target == b"/204":
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif req.target == b"/304":
            writer.write(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast")
        return True

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            writer.write(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
            head = await read_response(reader, head=True)
            writer.write(b"GET /204 HTTP/1.1\r\nHost: h\r\n\r\n")
            no_content = await read_response(reader)
            writer.write(b"GET /304 HTTP/1.1\r\nHost: h\r\n\r\n")
            not_modified = await read_response(reader)
            writer.write(b"GET /last HTTP/1.1\r\nHost: h\r\n\r\n")
            last = await read_response(reader)
    assert (head.status, head.header(b"content-length")) == (200, b"10")
    assert no_content.status == 204
    assert no_content.header(b"transfer-encoding") is None
    assert no_content.header(b"content-length") is None
    assert not_modified.status == 304 and not_modified.header(b"etag") == b'"x"'
    assert not_modified.header(b"transfer-encoding") is None
    assert (last.status, last.body) == (200, b"last")
    assert up.connections == 1


@pytest.mark.parametrize("framing", ["chunked", "length"])
async def test_request_bodies_forwarded_with_their_framing(
    gateway: Callable[..., Any], framing: str
) -> None:
    """A chunked request body is forwarded chunked, a Content-Length one with its length;
    the upstream gets the same bytes either way."""
    async with capture_upstream() as up:
        port = await start(gateway, up.port)
        if framing == "chunked":
            data = (
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n5;ext=1\r\ndefgh\r\n0\r\n\r\n"
            )
        else:
            data = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\nabcdefgh"
        (resp,), _ = await send_raw(port, data, close_wait=0)
    (req,) = up.requests
    assert resp.status == 200
    assert req.body == b"abcdefgh"
    if framing == "chunked":
        assert req.header(b"transfer-encoding") == b"chunked"
        assert req.header(b"content-length") is None
    else:
        assert req.header(b"content-length") == b"8"
        assert req.header(b"transfer-encoding") is None


@pytest.mark.parametrize("framing", ["chunked", "length", "eof"])
async def test_response_bodies_reframed_for_the_client(
    gateway: Callable[..., Any], framing: str
) -> None:
    """Content-Length responses keep their length; chunked and EOF-delimited upstream bodies
    reach an HTTP/1.1 client chunked and complete; an EOF-delimited upstream is not reused."""
    body = bytes(range(256)) * 40

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 1000):
                piece = body[i : i + 1000]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            writer.write(b"0\r\n\r\n")
            return True
        if framing == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return True
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
        return False

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            for _ in range(2):
                writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                resp = await read_response(reader)
                assert resp.complete and resp.body == body
                if framing == "length":
                    assert resp.header(b"content-length") == b"%d" % len(body)
                else:
                    assert resp.header(b"transfer-encoding") == b"chunked"
    assert up.connections == (2 if framing == "eof" else 1)


async def test_eof_delimited_response_to_http10_client(gateway: Callable[..., Any]) -> None:
    """An HTTP/1.0 client gets an EOF-delimited upstream body as is, ended by the close."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n0123456789")
        return False

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        (resp,), closed = await send_raw(port, b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    assert resp.body == b"0123456789"
    assert resp.header(b"transfer-encoding") is None
    assert closed


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_upstream_reset_mid_body_truncates_response(
    gateway: Callable[..., Any], framing: str
) -> None:
    """An upstream dying after the response head leaves the client a visibly truncated
    response (short Content-Length or no last chunk) and a closed connection (never a
    complete-looking fake)."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if framing == "length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        else:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n"
            )
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()
        return False

    async with capture_upstream(respond) as up:
        port = await start(gateway, up.port)
        async with connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            resp = await read_response(reader)
            closed = await is_closed(reader)
    assert resp.status == 200
    assert not resp.complete
    assert resp.body == b"0123456789"
    assert closed
