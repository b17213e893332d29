"""Data path: ``DownstreamProtocol``, one client connection (HTTP/1.1, optionally over TLS).

It parses requests with llhttp (httptools), checks them the way a strict proxy must
(robustness.md §2, with ``request_checks.py``), keeps responses in request order for pipelined
requests, and relays flow control between client and upstream. Each request becomes an
``Exchange``. Beyond llhttp: 414/431 limits; header fields whose names contain an underscore
are dropped (Envoy ``DROP_HEADER``, nginx's default); trailers are never merged. llhttp is told
to accept Content-Length with Transfer-Encoding only so that a trailer named Content-Length
does not fail a valid chunked body; ``request_checks`` rejects that pair in a head. A malformed
request is answered with its 4xx when no response is under way, after the responses owed to
earlier pipelined requests otherwise, and the connection is closed.

Deadlines: the request head must arrive within ``header_timeout`` of its first byte (408), a
keep-alive connection may idle ``idle_timeout``, and an exchange that shows no activity either
way for ``stream_idle_timeout`` is ended by it. One lazily re-armed timer per connection serves
all three, so a request costs no timer operations (it fires at least every shortest timeout).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import httptools

from gateway_core.proxy.client_info import origin_ip, trusts_https
from gateway_core.proxy.exchange import Exchange
from gateway_core.proxy.http1_wire import Http1ResponseWriter, render
from gateway_core.proxy.request_checks import BadRequest, check_head, request_target
from gateway_core.proxy.tunnel import ClientTunnelBuffer
from gateway_core.routing.request import RequestHead, join_headers

if TYPE_CHECKING:
    from gateway_core.server.listeners import ListenerRuntime
    from gateway_core.server.state import GatewayRuntime

MAX_URL = 16384
MAX_HEADER_BYTES = 61440
MAX_HEADERS = 100


class DownstreamProtocol(Http1ResponseWriter, asyncio.Protocol):
    http2 = False
    """The client speaks HTTP/1.x on this connection (``useClientProtocol`` reads it)."""

    __slots__ = (
        "_deadline",
        "_deferred",
        "_head_phase",
        "_headers",
        "_hsize",
        "_paused",
        "_tick",
        "_timer",
        "_trailers",
        "_url",
        "broken",
        "client_ip",
        "client_ip_bytes",
        "closed",
        "current",
        "listener",
        "local_address",
        "loop",
        "parser",
        "parsing",
        "peer_address",
        "queue",
        "requests",
        "route_table",
        "runtime",
        "scheme",
        "sniff",
        "transport",
        "trust_forwarded",
        "tunnel",
        "write_paused",
    )

    def __init__(self, runtime: GatewayRuntime, listener: ListenerRuntime) -> None:
        Http1ResponseWriter.__init__(self)
        self.runtime = runtime
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        self.route_table = listener.default_route_table
        self.scheme = b"https" if listener.tls is not None else b"http"
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.peer_address: tuple[str, int] = ("", 0)
        self.local_address: tuple[str, int] = ("", 0)
        self.trust_forwarded = runtime.settings.xff_trusted_hops > 0
        self.closed = False
        self.current: Exchange | None = None
        self.parsing: Exchange | None = None
        self.queue: collections.deque[Exchange] = collections.deque()
        self.keep_alive = True
        self.http11 = True
        self.requests = 0
        self.sniff = True
        """The first bytes may still be the HTTP/2 preface (h2c with prior knowledge)."""
        self.write_paused = False
        self.tunnel: object | None = None
        self._paused: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        settings = runtime.settings
        self._tick = min(
            settings.header_timeout, settings.idle_timeout, settings.stream_idle_timeout
        )
        self._deadline = 0.0
        """When the head (``_head_phase``) or the keep-alive idle period runs out."""
        self._head_phase = True
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._hsize = 0
        self._trailers = False
        self.broken = False
        """The request stream is unrecoverable: nothing more is parsed on this connection."""
        self._deferred: tuple[int, bytes] | None = None

    # -- connection lifecycle ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=65536)
        peer = transport.get_extra_info("peername")
        self.client_ip = peer[0] if isinstance(peer, tuple) else "127.0.0.1"
        self.client_ip_bytes = self.client_ip.encode()
        if isinstance(peer, tuple):
            self.peer_address = (peer[0], peer[1])
        local = transport.get_extra_info("sockname")
        if isinstance(local, tuple):
            self.local_address = (local[0], local[1])
        tls = self.listener.tls
        if tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            refusal = tls.admit(ssl_object)
            if refusal is not None:
                self.runtime.metrics.record_protocol_error(495)
                self.transport.abort()
                return
            self.route_table = tls.server_of(ssl_object).route_table
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._become_h2(b"")
                return
        self.runtime.connections.add(self)
        now = self.loop.time()
        self._deadline = now + self.runtime.settings.header_timeout
        self._schedule(now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.runtime.connections.discard(self)
        current, self.current = self.current, None
        if current is not None:
            current.downstream_lost()
        self.queue.clear()

    def data_received(self, data: bytes) -> None:
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
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._on_parser_upgrade(data[upgrade.args[0] :])
        except BadRequest as rej:
            self._reject(rej.status, rej.message)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, BadRequest):
                self._reject(cause.status, cause.message)
            else:
                self._reject(400, b"malformed request\n")

    def _become_h2(self, data: bytes) -> None:
        """Hand the connection to the HTTP/2 codec (ALPN ``h2``, or the h2c preface)."""
        from gateway_core.proxy.h2_downstream import H2Downstream

        transport = self.transport
        assert transport is not None
        self.sniff = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.runtime.connections.discard(self)
        h2 = H2Downstream(
            self.runtime,
            self.listener,
            self.route_table,
            self.scheme,
            self.peer_address,
            self.local_address,
        )
        transport.set_protocol(h2)
        h2.connection_made(transport)
        if data:
            h2.data_received(data)

    def _on_parser_upgrade(self, rest: bytes) -> None:
        ex = self.parsing
        if ex is not None and ex.upgrade and not ex.finished:
            # WebSocket: bytes after the request head belong to the tunnel once it opens.
            self.tunnel = ClientTunnelBuffer(self, rest)
            return
        if rest:
            self.data_received(rest)

    def _reject(self, status: int, message: bytes) -> None:
        """Protocol error: answer it in turn, then close."""
        self.runtime.metrics.record_protocol_error(status)
        if self.transport is None or self.closed or self.broken:
            return
        self.broken = True
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
        if self.parsing is not None:
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is not None:
            if not ex.request_done:  # a request without a body was complete from its head
                ex.on_request_complete()
            if ex is not self.current or ex.finished:
                self.parsing = None

    # -- writing -------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, parts: Sequence[bytes]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(parts)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.current is not None:
            upstream = self.current.upstream
            if upstream is not None:
                upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.current is not None:
            upstream = self.current.upstream
            if upstream is not None:
                upstream.resume_reading()

    def pause_reading(self, reason: str) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- exchange completion -------------------------------------------------------------------
    def exchange_finished(self, ex: Exchange, abort: bool) -> None:
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
            if not self.queue:
                self.resume_reading("pipeline")
            nxt.begin()
            return
        if self.broken:
            if self._deferred is not None:
                self.transport.write(render(*self._deferred, close=True))
            self.transport.close()
            return
        # Idle until the next request, unless one is already arriving (pipelined, partial).
        settings = self.runtime.settings
        self._head_phase = bool(self._url or self._headers)
        timeout = settings.header_timeout if self._head_phase else settings.idle_timeout
        self._deadline = now + timeout

    def draining_now(self) -> bool:
        return self.runtime.draining

    def drain(self) -> None:
        """Drain step: an idle keep-alive connection closes now; a busy one after its
        response (``draining_now`` makes that response say ``connection: close``)."""
        if self.current is None and self.transport is not None:
            self.transport.close()

    def origin_ip(self, req: RequestHead) -> str:
        return origin_ip(self.runtime.settings.xff_trusted_hops, req, self.client_ip)

    def trusts_https(self, req: RequestHead) -> bool:
        return trusts_https(self.trust_forwarded, req)

    # -- deadlines --------------------------------------------------------------------------------
    def _schedule(self, now: float) -> None:
        current = self.current
        settings = self.runtime.settings
        due = current.activity + settings.stream_idle_timeout if current else self._deadline
        at = min(due, now + self._tick)
        self._timer = self.loop.call_at(at if at > now else now + self._tick, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.transport is None or self.closed:
            return
        now = self.loop.time()
        current = self.current
        if current is not None:
            if now - current.activity >= self.runtime.settings.stream_idle_timeout:
                current.stream_idle()
        elif now >= self._deadline:
            if self._head_phase and (self._url or self._headers):
                self.transport.write(render(408, b"request header timeout\n", close=True))
            self.transport.close()
            return
        if not self.closed:
            self._schedule(now)
