"""Data path: ``DownstreamProtocol``, one client connection (HTTP/1.1, optionally over TLS).

It parses requests with llhttp (httptools), checks them the way a strict proxy must
(with ``request_checks.py``: RFC 9112's framing, field and request-target rules, §2.2, §3,
§5, §6.1, §6.3, §7.1), keeps responses in request order for pipelined
requests, and relays flow control between client and upstream (``ClientConnection``, its base,
has what does not depend on parsing). Each request becomes an ``Exchange``. Beyond llhttp:
414/431 limits; header fields whose names contain an underscore are dropped (Envoy
``DROP_HEADER``, nginx's default); trailers are never merged. llhttp is told to accept
Content-Length with Transfer-Encoding only so that a trailer named Content-Length does not fail
a valid chunked body; ``request_checks`` rejects that pair in a head. A malformed request is
answered with its 4xx when no response is under way, after the responses owed to earlier
pipelined requests otherwise, and the connection is closed.

Pipelining is bounded: at most ``MAX_PIPELINED`` requests wait behind the one being answered.
Client bytes are parsed in pieces that cannot complete more request heads than there is room
for (``pipeline.heads_cut``); the rest waits unparsed and the client is not read meanwhile, so
TCP back-pressure applies (aiohttp caps at 32 too). A client that half-closes still gets every
response owed to its complete requests, then the close (plain TCP: asyncio cannot half-close
TLS); an EOF inside a request head or body is a client abort. A bug in the gateway's own code
raised in a parser callback reaches ``internal_error`` (500), never the 400 path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools

from gateway_core.proxy.client_conn import ClientConnection
from gateway_core.proxy.errors import gateway_fault
from gateway_core.proxy.exchange import Exchange
from gateway_core.proxy.h2_downstream import H2Downstream
from gateway_core.proxy.http1_wire import render
from gateway_core.proxy.pipeline import heads_cut
from gateway_core.proxy.request_checks import BadRequest, check_head, request_target
from gateway_core.proxy.tunnel import ClientTunnelBuffer
from gateway_core.routing.request import RequestHead, join_headers

MAX_URL = 16384
MAX_HEADER_BYTES = 61440
MAX_HEADERS = 100
MAX_PIPELINED = 32
"""Requests that may wait behind the one being answered; past that the client is not read."""
_BAD_REQUEST = (BadRequest,)

if TYPE_CHECKING:
    from gateway_core.proxy.context import GatewayContext, ListenerContext
    from gateway_core.proxy.interfaces import ClientExchange


class DownstreamProtocol(ClientConnection):
    __slots__ = ("_body_left", "_feeding", "_hsize", "_tail", "_trailers", "parser")

    h2_connection = H2Downstream

    def __init__(
        self,
        runtime: GatewayContext,
        listener: ListenerContext,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(runtime, listener, loop)
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        self._hsize = 0
        self._trailers = False
        self._tail = b""
        """The last two bytes parsed (a head's empty line may straddle two reads)."""
        self._feeding = False
        self._body_left = 0
        """Content-Length body bytes the parser still expects (0: none, or unknown)."""

    # -- reading -------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            if self.tunnel is not None:
                self.tunnel.from_client(data)  # type: ignore[attr-defined]
                return
            if self.broken:
                return
            if self.sniff:
                self.sniff = False
                if data.startswith(b"PRI * HTTP/2.0") and self.listener.tls is None:
                    self._become_h2(data)  # h2c with prior knowledge (RFC 9113 §3.3)
                    return
            self._backlog = self._backlog + data if self._backlog else data
            self._feed()
        except Exception as fault:
            self.internal_error(fault, "request path")

    def eof_received(self) -> bool:
        """The client half-closed. Its complete requests are still answered, over the
        transport kept open for writing; then the connection closes."""
        self.eof = True
        if self.tunnel is not None or self.listener.tls is not None:
            return False  # a tunnel ends with either side; asyncio cannot half-close TLS
        try:
            return bool(self._backlog) or self._at_eof()
        except Exception as fault:
            self.internal_error(fault, "request path")
            return False

    def _at_eof(self) -> bool:
        """All client bytes are parsed after its EOF: abort a request it left unfinished, and
        close unless responses are still owed (True: the transport stays open)."""
        if self.closed or self.transport is None:
            return False
        ex = self.parsing
        if self._in_message and ex is not None and not ex.request_done:
            self.parsing = None
            if ex is self.current:
                ex.downstream_lost()  # its body will never complete: a client abort
                return False
            if ex in self.queue:
                self.queue.remove(ex)
        if self.current is None:
            self.transport.close()
            return False
        return True

    def _feed(self) -> None:
        """Parse the backlog in pieces that cannot complete more request heads than the
        pipeline has room for; what is left waits, with the client not read, until answers
        free room (``exchange_finished`` feeds again)."""
        if self._feeding:
            return  # a parser callback finished an exchange: the loop below goes on
        self._feeding = True
        try:
            while self._backlog and not self.broken and self.tunnel is None:
                room = MAX_PIPELINED - len(self.queue) + (self.current is None)
                if room <= 0:
                    break
                data = self._backlog
                cut = heads_cut(data, self._tail, room, self._body_left)
                if cut < len(data):
                    chunk, self._backlog = data[:cut], data[cut:]
                else:
                    chunk, self._backlog = data, b""
                self._tail = chunk[-2:] if len(chunk) >= 2 else (self._tail + chunk)[-2:]
                try:
                    self.parser.feed_data(chunk)
                except httptools.HttpParserUpgrade as upgrade:
                    rest, self._backlog = chunk[upgrade.args[0] :] + self._backlog, b""
                    self._on_parser_upgrade(rest)
                except httptools.HttpParserError as exc:
                    self._parse_failed(exc)
        finally:
            self._feeding = False
        if self._backlog or self.queue:
            self.pause_reading("pipeline")
        elif self._paused:
            self.resume_reading("pipeline")
        if self.eof and not self._backlog and not self.closed:
            self._at_eof()

    def _parse_failed(self, exc: httptools.HttpParserError) -> None:
        """The client's bytes are malformed (4xx, then close), or a parser callback raised:
        ``BadRequest`` on purpose, anything else is a bug of the gateway's (500)."""
        fault = gateway_fault(exc, _BAD_REQUEST)
        if fault is not None:
            self.internal_error(fault, "request path")
            return
        cause = exc.__context__
        if isinstance(cause, BadRequest):
            self._reject(cause.status, cause.message)
        else:
            self._reject(400, b"malformed request\n")

    def _on_parser_upgrade(self, rest: bytes) -> None:
        ex = self.parsing
        if ex is not None and ex.upgrade and not ex.finished:
            # WebSocket: bytes after the request head belong to the tunnel once it opens.
            self.tunnel = ClientTunnelBuffer(self, rest, ex)
            return
        self._backlog = rest  # a refused upgrade (h2c, HTTP/1.0): more requests may follow

    def _reject(self, status: int, message: bytes) -> None:
        """Protocol error: answer it in turn, then close."""
        self.runtime.metrics.record_protocol_error(status)
        if self.transport is None or self.closed or self.broken:
            return
        self.broken = True
        self._backlog = b""
        self.pause_reading("broken")
        ex, self.parsing = self.parsing, None
        if ex is not None and not ex.request_done and ex in self.queue:
            self.queue.remove(ex)  # its body broke before its turn came
        current = self.current
        if current is None:
            self.transport.write(render(status, message, close=True))
            self.transport.close()
        elif ex is current and not current.request_done:
            current.reject(status, message)
        else:
            self._deferred = (status, message)

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._headers = []
        self._hsize = 0
        self._trailers = False
        if self.current is None and not self.queue:
            self._head_phase = True
            self._deadline = self.loop.time() + self.runtime.settings.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            raise BadRequest(414, b"request target too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hsize += len(name) + len(value) + 4
        if len(self._headers) >= MAX_HEADERS or self._hsize > MAX_HEADER_BYTES:
            raise BadRequest(431, b"request header fields too large\n")
        if self._trailers or name.find(b"_") >= 0:
            return  # trailers are never merged; underscore names are dropped
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise BadRequest(505, b"HTTP version not supported\n")
        self.http11 = http11 = version == "1.1"
        method = parser.get_method()
        headers = self._headers
        joined = join_headers(headers)
        authority, framing, upgrade = check_head(
            method,
            headers,
            http11=http11,
            default_authority=self.listener.default_authority,
            parser=parser,
            joined=joined,
        )
        path, query, target_authority = request_target(self._url, method, headers)
        if target_authority is not None:
            authority = target_authority
            joined = join_headers(headers)  # its Host field was replaced
        req = RequestHead(
            method,
            path,
            query,
            authority,
            self.scheme,
            self.listener.port,
            headers,
            self.client_ip,
            headers=joined,
        )
        self.requests += 1
        self._url = b""
        self._headers = []
        self._trailers = True
        if framing == "length":
            length = joined.get(b"content-length", b"")
            self._body_left = int(length) if length.isdigit() else 0
        ex = Exchange(self, req, framing, upgrade)
        ex.client_keep_alive = parser.should_keep_alive()
        self.parsing = ex
        if self.current is None:
            self.keep_alive = ex.client_keep_alive
            self.current = ex
            ex.begin()
        else:
            self.queue.append(ex)
            self.pause_reading("pipeline")

    def on_body(self, body: bytes) -> None:
        if self._body_left:
            self._body_left -= len(body)
        if self.parsing is not None:
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._body_left = 0
        ex = self.parsing
        if ex is not None:
            if not ex.request_done:  # a request without a body was complete from its head
                ex.on_request_complete()
            if ex is not self.current or ex.finished:
                self.parsing = None

    # -- exchange completion -------------------------------------------------------------------
    def exchange_finished(self, ex: ClientExchange, abort: bool) -> None:
        now = self.loop.time()
        self.runtime.observe(ex, now)
        if ex is not self.current:
            return
        self.current = None
        if self.transport is None or self.closed:
            return
        if abort:
            self.transport.abort()
            return
        if not self.keep_alive or not ex.request_done or self.runtime.draining or self.tunnel:
            self.transport.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.keep_alive = nxt.client_keep_alive
            self.current = nxt
            nxt.activity = self.loop.time()
            if not self.queue and not self._backlog:
                self.resume_reading("pipeline")
            nxt.begin()
            if self._backlog and not self.closed:
                self._feed()  # room for one more pipelined request
            return
        if self.broken:
            if self._deferred is not None:
                self.transport.write(render(*self._deferred, close=True))
            self.transport.close()
            return
        if self._backlog:
            self._feed()
            return
        if self.eof:
            self.transport.close()  # every response owed to a half-closed client is out
            return
        # Idle until the next request, unless one is already arriving (pipelined, partial).
        settings = self.runtime.settings
        self._head_phase = bool(self._url or self._headers)
        timeout = settings.header_timeout if self._head_phase else settings.idle_timeout
        self._deadline = now + timeout
