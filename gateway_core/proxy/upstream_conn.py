"""Data path: one keep-alive HTTP/1.1 connection to an upstream host.

It parses responses with llhttp (httptools) and feeds them to the ``Exchange`` currently
attached. When a response completes and both sides allow keep-alive, the connection goes back
to its pool. A connection serves one exchange at a time (no upstream pipelining).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, cast

import httptools

if TYPE_CHECKING:
    from gateway_core.upstream.pool import HostPool


class ResponseSink(Protocol):
    """What an upstream connection reports to (implemented by ``Exchange``)."""

    def on_response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], framing: str, keep_alive: bool
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_complete(self, reusable: bool) -> None: ...
    def on_upstream_lost(self, exc: BaseException | None, response_started: bool) -> None: ...
    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None: ...
    def upstream_pause(self) -> None: ...
    def upstream_resume(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_expect_no_body",
        "_framing",
        "_headers",
        "_response_started",
        "closed",
        "parser",
        "pool",
        "requests",
        "sink",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: HostPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.requests = 0
        self.closed = False
        self.tunnel: ResponseSink | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._response_started = False
        self._expect_no_body = False
        self._framing = "length"

    # -- lifecycle --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=65536)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        if sink is not None:
            if self._response_started and self._framing == "eof":
                sink.on_response_complete(False)
            else:
                sink.on_upstream_lost(exc, self._response_started)
        tunnel, self.tunnel = self.tunnel, None
        if tunnel is not None:
            tunnel.on_upstream_lost(exc, True)
        self.pool.on_closed(self)

    def attach(self, sink: ResponseSink, head: bytes, expect_no_body: bool) -> None:
        """Start one request: remember who gets the response and send the head."""
        assert self.transport is not None
        self.sink = sink
        self.requests += 1
        self._response_started = False
        self._expect_no_body = expect_no_body
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(parts)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    # -- flow control -----------------------------------------------------------------------
    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_pause()

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.upstream_resume()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- parsing ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.on_response_body(data)
            return
        if self.sink is None:
            # Bytes with no request outstanding: the upstream is broken; never reuse it.
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0]
            sink, self.sink = self.sink, None
            if sink is not None:
                self.tunnel = sink
                sink.on_upstream_upgrade(self, data[offset:])
        except httptools.HttpParserError as exc:
            sink, self.sink = self.sink, None
            self.abort()
            if sink is not None:
                sink.on_upstream_lost(exc, self._response_started)

    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return  # interim responses are not forwarded (Expect is answered by the gateway)
        self._response_started = True
        sink = self.sink
        if sink is None:
            return
        framing = _framing(self._headers, status, self._expect_no_body)
        self._framing = framing
        keep_alive = self.parser.should_keep_alive() and framing != "eof"
        sink.on_response_head(status, self._headers, framing, keep_alive)
        if framing == "none" and self._expect_no_body:
            # A HEAD response: llhttp would wait for Content-Length bytes that never come.
            self.parser = httptools.HttpResponseParser(self)
            self._finish(keep_alive)

    def on_body(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink.on_response_body(data)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            return
        if self.sink is not None:
            self._finish(self.parser.should_keep_alive())

    def _finish(self, keep_alive: bool) -> None:
        sink, self.sink = self.sink, None
        reusable = keep_alive and not self.closed and self.pool.may_reuse(self)
        if sink is not None:
            sink.on_response_complete(reusable)
        if reusable:
            self.pool.release(self)
        else:
            self.close()


def _framing(headers: list[tuple[bytes, bytes]], status: int, no_body: bool) -> str:
    """How the response body is delimited: ``none``, ``length``, ``chunked`` or ``eof``."""
    if no_body or status in (204, 304) or 100 <= status < 200:
        return "none"
    chunked = False
    has_length = False
    for name, value in headers:
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"content-length":
            has_length = True
    if chunked:
        return "chunked"
    if has_length:
        return "length"
    return "eof"
