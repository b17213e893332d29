"""Data path: one keep-alive HTTP/1.1 connection to an upstream host.

It parses responses with llhttp (httptools) and reports them to the ``ResponseSink`` attached for
the current request (an ``UpstreamRequest``, or a mirror). A connection serves one request at a
time (no upstream pipelining); when a response completes and both sides allow keep-alive, it
goes back to its pool.

Responses are held to the same strictness as requests (RFC 9112 §6.3): invalid framing
(duplicate or malformed Content-Length, Content-Length with Transfer-Encoding) or an oversize
head are protocol errors, and the connection is never reused after one. Bytes nobody asked for
(a second response in the read that completed the first, anything after a 204 or a HEAD
response, bytes on an idle connection) close the connection, are counted per cluster
(``gateway_upstream_cx_extra_data_total``) and logged once for it, as nginx warns "upstream
sent more data than specified"; the response they followed still completes. That is why a
completed response is handed on, and the connection released, only after the whole read was
parsed: released earlier, llhttp would deliver the rest to the next request.
Detaching the sink (``detach``) silences the connection for good: an attempt abandoned by a
timeout or a retry can never be called back by it. A bug in the gateway's own code raised while
a response is relayed drops the connection without blaming the host (``on_internal_error``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, cast

import httptools

from gateway_core.proxy.errors import gateway_fault
from gateway_core.proxy.http1_wire import last_chunk

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import ExchangeView
    from gateway_core.upstream.connector import ConnectionOwner

MAX_HEADER_BYTES = 61440
"""Envoy's ``max_response_headers_kb`` default (60 KiB); larger heads are a protocol error."""
MAX_HEADERS = 100

_log = logging.getLogger("gateway.upstream")


class ResponseSink(Protocol):
    """Who a connection reports the response of its current request to."""

    def on_response_head(
        self, status: int, headers: list[tuple[bytes, bytes]], framing: str, keep_alive: bool
    ) -> None: ...
    def on_response_body(self, data: bytes) -> None: ...
    def on_response_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None: ...
    def on_response_complete(self, reusable: bool) -> None: ...
    def on_upstream_lost(self, protocol_error: bool, refused: bool = False) -> None: ...
    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None: ...
    def on_internal_error(self, fault: Exception) -> None: ...
    def flush(self) -> None: ...
    def upstream_pause(self) -> None: ...
    def upstream_resume(self) -> None: ...


class _HeadTooLarge(Exception):
    pass


class _ExtraData(Exception):
    """A message begins after the response was complete: nobody asked for it."""


_OWN_SIGNALS = (_HeadTooLarge, _ExtraData)


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "_chunked",
        "_done",
        "_expect_no_body",
        "_framing",
        "_headers",
        "_hsize",
        "_request_sent",
        "_response_started",
        "_status",
        "_trailers",
        "closed",
        "idle_since",
        "parser",
        "pool",
        "requests",
        "sink",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: ConnectionOwner[UpstreamConnection]) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: ResponseSink | None = None
        self.requests = 0
        self.closed = False
        self.idle_since = 0.0
        """When the pool last took this connection back (for its idle timeout)."""
        self.tunnel: ResponseSink | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._trailers: list[tuple[bytes, bytes]] = []
        self._hsize = 0
        self._status = 0
        self._response_started = False
        self._request_sent = False
        self._expect_no_body = False
        self._chunked = False
        self._framing = "length"
        self._done: bool | None = None
        """Set when the response is complete (to its keep-alive), until the read is parsed."""

    # -- lifecycle --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=65536)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        sink, self.sink = self.sink, None
        tunnel, self.tunnel = self.tunnel, None
        if sink is not None:
            try:
                if self._response_started and self._framing == "eof":
                    sink.on_response_complete(False)
                else:
                    sink.on_upstream_lost(False)
            except Exception as fault:
                sink.on_internal_error(fault)
        if tunnel is not None:
            try:
                tunnel.on_upstream_lost(False)
            except Exception as fault:
                tunnel.on_internal_error(fault)
        self.pool.on_closed(self)

    def attach(self, sink: ResponseSink, head: bytes, expect_no_body: bool, sent: bool) -> None:
        """Start one request: remember who gets the response and send the head. ``sent``: the
        head is the whole request (else ``end_request`` follows the body)."""
        assert self.transport is not None
        self.sink = sink
        self.requests += 1
        self._done = None
        self._response_started = False
        self._request_sent = sent
        self._expect_no_body = expect_no_body
        self.transport.write(head)

    # -- the request as events (an HTTP/1.1 connection is its own one stream) ----------------
    def open_stream(
        self, sink: ResponseSink, ex: ExchangeView, expect_no_body: bool, complete: bool
    ) -> UpstreamConnection:
        """Start the exchange's request on this connection: its head now (``complete``: the
        head is the whole request); body events follow in the client's framing."""
        self._chunked = ex.req_framing == "chunked"
        self.attach(sink, ex.head, expect_no_body, complete)
        return self

    def send_body(self, data: bytes) -> None:
        if self._chunked:
            self.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.write(data)

    def end_body(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        if self._chunked:
            self.write(last_chunk(trailers))
        self.end_request()

    def cancel(self) -> None:
        """The attempt is abandoned: the connection cannot be reused (its response is
        unfinished), so it closes."""
        self.detach()

    def end_request(self) -> None:
        """The request is completely written; only then may the connection be reused (a
        response that arrives earlier leaves the request's framing unfinished)."""
        self._request_sent = True

    def detach(self) -> None:
        """Forget the sink and close: nothing of this connection reaches anyone any more."""
        self.sink = None
        self.tunnel = None
        self.abort()

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
        sink = self.sink or self.tunnel
        if sink is not None:
            sink.upstream_pause()

    def resume_writing(self) -> None:
        sink = self.sink or self.tunnel
        if sink is not None:
            sink.upstream_resume()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- parsing ----------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        sink = self.tunnel or self.sink
        if sink is None:
            if not self.closed:
                self._extra_data()  # bytes while no request is outstanding
            return
        try:
            if self.tunnel is not None:
                sink.on_response_body(data)
            else:
                self._parse(data, sink)
        except Exception as fault:
            self._internal_error(fault, sink)

    def _parse(self, data: bytes, sink: ResponseSink) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgraded(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as exc:
            fault = gateway_fault(exc, _OWN_SIGNALS)
            if fault is not None:
                self._internal_error(fault, sink)
                return
            if self._done is None:
                self._protocol_error()
                return
            self._extra_data()  # after a complete response: it still completes
        if self._done is not None:
            self._finish()
        else:
            sink.flush()

    def _extra_data(self) -> None:
        """Bytes nobody asked for: never reuse this connection; the cluster counts and warns
        (once: it closes now)."""
        self.pool.on_extra_data()
        self.abort()

    def _internal_error(self, fault: Exception, sink: ResponseSink) -> None:
        """A bug in the gateway's code while this connection served ``sink``: drop the
        connection if it still carries that response (its parse state is unknown), without
        blaming its host, and let the sink map the error."""
        if self.sink is sink or self.tunnel is sink:
            self.sink = self.tunnel = None
            self._done = None
            self.abort()
        sink.on_internal_error(fault)

    def _upgraded(self, rest: bytes) -> None:
        sink, self.sink = self.sink, None
        if sink is not None and self._status == 101:
            self.tunnel = sink
            sink.on_upstream_upgrade(self, rest)
        else:
            self.abort()

    def _protocol_error(self) -> None:
        sink, self.sink = self.sink, None
        self.abort()
        if sink is not None:
            sink.on_upstream_lost(True)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hsize += len(name) + len(value) + 4
        if self._response_started:  # fields after a chunked body: trailers
            self._trailers.append((name.lower(), value))
        else:
            self._headers.append((name.lower(), value))
        if self._hsize > MAX_HEADER_BYTES or len(self._headers) > MAX_HEADERS:
            raise _HeadTooLarge

    def on_headers_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        self._status = status
        if status < 200 and status >= 100 and status != 101:
            return  # interim responses are not forwarded (Expect is answered by the gateway)
        self._response_started = True
        sink = self.sink
        if sink is None:
            return
        headers = self._headers
        framing = self._framing = _framing(headers, status, self._expect_no_body)
        keep_alive = framing != "eof" and parser.should_keep_alive()
        sink.on_response_head(status, headers, framing, keep_alive)
        if framing == "none" and self._expect_no_body and status != 101:
            # A HEAD response: llhttp would wait for Content-Length bytes that never come.
            # The next read goes to a new parser; any byte of this one is extra data.
            self.parser = httptools.HttpResponseParser(self)
            self._next_message()
            self._done = keep_alive

    def on_message_begin(self) -> None:
        if self._done is not None:
            raise _ExtraData

    def on_body(self, data: bytes) -> None:
        if self._done is not None:
            raise _ExtraData
        sink = self.sink
        if sink is not None:
            sink.on_response_body(data)

    def on_message_complete(self) -> None:
        self._headers = []  # ``_next_message``, inlined
        self._hsize = 0
        status = self._status
        # Interim responses end here; a 101 continues as a tunnel (HttpParserUpgrade follows).
        if status < 200 or self.sink is None or self._done is not None:
            return
        if self._trailers:
            trailers, self._trailers = self._trailers, []
            self.sink.on_response_trailers(trailers)
        self._done = self.parser.should_keep_alive()

    def _next_message(self) -> None:
        """The next message's head starts empty. Done at the end of each message rather than
        in an ``on_message_begin`` callback, which would cost a call per response."""
        self._headers = []
        self._hsize = 0

    def _finish(self) -> None:
        """The read that completed the response is parsed: release or close the connection,
        then tell the sink."""
        keep_alive, self._done = self._done, None
        sink, self.sink = self.sink, None
        reusable = (
            bool(keep_alive)
            and self._request_sent
            and not self.closed
            and self.pool.may_reuse(self)
        )
        # Released before the sink hears of it, so a retry or the next request may take it.
        if reusable:
            self.pool.release(self)
        else:
            self.close()
        if sink is not None:
            sink.on_response_complete(reusable)


def _framing(headers: list[tuple[bytes, bytes]], status: int, no_body: bool) -> str:
    """How the response body is delimited: ``none``, ``length``, ``chunked`` or ``eof``."""
    if no_body or status == 204 or status == 304 or 100 <= status < 200:
        return "none"
    framing = "eof"
    for name, value in headers:
        if name == b"content-length":
            framing = "length"
        elif name == b"transfer-encoding" and value.lower().find(b"chunked") >= 0:
            return "chunked"  # it wins over any Content-Length
    return framing
