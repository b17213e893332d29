"""Functional: deadlines that protect the gateway from slow or idle clients.

Slowloris headers get 408 and a close, as HAProxy's ``timeout http-request`` gives (nginx's
``client_header_timeout`` closes without a response); idle connections are closed; a stalled
body ends with Envoy's stream idle timeout. aiohttp's own server has no header timeout at all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    connect,
    is_closed,
    read_response,
)

ROUTE = "  - route: [{destination: {host: up.svc}}]"


async def test_partial_head_gets_408_at_header_deadline(gateway: Callable[..., Any]) -> None:
    """A request head that does not complete within header_timeout gets 408 and a close."""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(config(port, ROUTE, {"up.svc": [up.port]}), header_timeout=0.3)
        async with connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n")
            resp = await read_response(reader, within=3)
            closed = await is_closed(reader)
    assert resp.status == 408
    assert closed
    assert up.requests == []


async def test_slowloris_drip_is_cut_by_total_header_deadline(
    gateway: Callable[..., Any],
) -> None:
    """The header deadline is total, not per read: a client dripping one byte every 50 ms
    still gets 408 once header_timeout has passed."""
    port = free_port()
    await gateway(config(port, ROUTE, {"up.svc": [1]}), header_timeout=0.4)
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 200
    async with connect(port) as (reader, writer):

        async def drip() -> None:
            for byte in head:
                writer.write(bytes((byte,)))
                await asyncio.sleep(0.05)

        dripping = asyncio.ensure_future(drip())
        try:
            resp = await read_response(reader, within=5)
        finally:
            dripping.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await dripping
    assert resp.status == 408


async def test_silent_connection_closed_without_response(gateway: Callable[..., Any]) -> None:
    """A connection that never sends a byte is closed at the header deadline, silently."""
    port = free_port()
    await gateway(config(port, ROUTE, {"up.svc": [1]}), header_timeout=0.2)
    async with connect(port) as (reader, _):
        data = await asyncio.wait_for(reader.read(), 3)
    assert data == b""


async def test_idle_keep_alive_connection_closed(gateway: Callable[..., Any]) -> None:
    """A keep-alive connection idle for idle_timeout after a response is closed silently."""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(config(port, ROUTE, {"up.svc": [up.port]}), idle_timeout=0.3)
        async with connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (await read_response(reader)).status == 200
            rest = await asyncio.wait_for(reader.read(), 3)
    assert rest == b""


async def test_stalled_request_body_gets_408(gateway: Callable[..., Any]) -> None:
    """A client that stops sending its request body for stream_idle_timeout gets 408 (Envoy's
    stream idle timeout) and the upstream connection is not reused."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with capture_upstream(respond) as up:
        port = free_port()
        await gateway(config(port, ROUTE, {"up.svc": [up.port]}), stream_idle_timeout=0.3)
        async with connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
            resp = await read_response(reader, within=3)
            closed = await is_closed(reader)
    assert resp.status == 408
    assert closed
    assert up.requests == []
