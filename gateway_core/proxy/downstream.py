"""Data path: ``DownstreamProtocol``, one client connection (HTTP/1.1, optionally over TLS).

It parses requests with llhttp (httptools), checks them the way a strict proxy must
(robustness.md §2), keeps responses in request order for pipelined requests, applies the
header, first-request and keep-alive deadlines, and relays flow control between client and
upstream. Each request becomes an ``Exchange``.

Beyond llhttp's own checks: 414/431 limits, exactly one valid Host, Content-Length together
with Transfer-Encoding (400 + close; llhttp is told to let it through only so that a trailer
named Content-Length does not fail a valid chunked body), Transfer-Encoding on HTTP/1.0, only
``chunked`` as a coding, absolute-form targets, CONNECT. Header fields whose names contain an
underscore are dropped (Envoy ``DROP_HEADER``, nginx's default) and trailers are never merged.
A malformed request is answered with its 4xx when no response is under way, after the
responses owed to earlier pipelined requests otherwise, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import collections
from typing import TYPE_CHECKING, cast

import httptools

from gateway_core.proxy.exchange import Exchange
from gateway_core.proxy.local_reply import render
from gateway_core.proxy.normalize import BadTarget, split_target
from gateway_core.routing.request import RequestHead

if TYPE_CHECKING:
    from gateway_core.server.listeners import ListenerRuntime
    from gateway_core.server.state import GatewayRuntime

MAX_URL = 16384
MAX_HEADER_BYTES = 61440
MAX_HEADERS = 100


class _Reject(Exception):
    def __init__(self, status: int, message: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


class DownstreamProtocol(asyncio.Protocol):
    __slots__ = (
        "_deferred",
        "_headers",
        "_hsize",
        "_paused",
        "_timer",
        "_trailers",
        "_url",
        "broken",
        "client_ip",
        "client_ip_bytes",
        "closed",
        "current",
        "http11",
        "keep_alive",
        "listener",
        "loop",
        "parser",
        "parsing",
        "queue",
        "requests",
        "route_table",
        "runtime",
        "scheme",
        "transport",
        "trust_forwarded",
        "tunnel",
        "write_paused",
    )

    def __init__(self, runtime: GatewayRuntime, listener: ListenerRuntime) -> None:
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
        self.trust_forwarded = runtime.settings.xff_trusted_hops > 0
        self.closed = False
        self.current: Exchange | None = None
        self.parsing: Exchange | None = None
        self.queue: collections.deque[Exchange] = collections.deque()
        self.keep_alive = True
        self.http11 = True
        self.requests = 0
        self.write_paused = False
        self.tunnel: object | None = None
        self._paused: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
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
        tls = self.listener.tls
        if tls is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            refusal = tls.admit(ssl_object)
            if refusal is not None:
                self.runtime.metrics.record_protocol_error(495)
                self.transport.abort()
                return
            self.route_table = tls.server_of(ssl_object).route_table
        self.runtime.connections.add(self)
        self._arm(self.runtime.settings.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._disarm()
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
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._on_parser_upgrade(data[upgrade.args[0] :])
        except _Reject as rej:
            self._reject(rej.status, rej.message)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                self._reject(cause.status, cause.message)
            else:
                self._reject(400, b"malformed request\n")

    def _on_parser_upgrade(self, rest: bytes) -> None:
        ex = self.parsing
        if ex is not None and ex.upgrade and not ex.finished:
            # WebSocket: bytes after the request head belong to the tunnel once it opens.
            from gateway_core.proxy.tunnel import ClientTunnelBuffer

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
            self._arm(self.runtime.settings.header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            raise _Reject(414, b"request target too long\n")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._hsize += len(name) + len(value) + 4
        if len(self._headers) >= MAX_HEADERS or self._hsize > MAX_HEADER_BYTES:
            raise _Reject(431, b"request header fields too large\n")
        if self._trailers or b"_" in name:
            return  # trailers are never merged; underscore names are dropped
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._disarm()
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise _Reject(505, b"HTTP version not supported\n")
        self.http11 = version == "1.1"
        method = parser.get_method()
        headers = self._headers
        authority, framing, upgrade = self._check_head(method, headers)
        try:
            path, query = split_target(self._url)
        except BadTarget as exc:
            if self._url == b"*" and method == b"OPTIONS":
                path, query = b"*", b""
            elif self._url.startswith((b"http://", b"https://")):
                path, query, authority = self._absolute_form(headers)
            else:
                raise _Reject(400, str(exc).encode() + b"\n") from None
        req = RequestHead(
            method, path, query, authority, self.scheme, self.listener.port, headers, self.client_ip
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

    def _check_head(
        self, method: bytes, headers: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, str, bool]:
        hosts = [v for n, v in headers if n == b"host"]
        if len(hosts) > 1:
            raise _Reject(400, b"multiple Host headers\n")
        if not hosts and self.http11:
            raise _Reject(400, b"missing Host header\n")
        authority = hosts[0] if hosts else self.listener.default_authority
        if not authority or any(c in authority for c in b" \t,@/\\"):
            raise _Reject(400, b"invalid Host header\n")
        if method == b"CONNECT":
            raise _Reject(405, b"CONNECT is not supported\n")
        coding: bytes | None = None
        length: bytes | None = None
        upgrade = False
        for name, value in headers:
            if name == b"transfer-encoding":
                coding = value if coding is None else coding + b"," + value
            elif name == b"content-length":
                length = value
            elif name == b"upgrade" and value.strip().lower() == b"websocket":
                upgrade = self.parser.should_upgrade()
        if coding is None:
            return authority, "length" if length and length.strip() != b"0" else "none", upgrade
        if not self.http11:
            raise _Reject(400, b"Transfer-Encoding in an HTTP/1.0 request\n")
        if length is not None:
            raise _Reject(400, b"both Content-Length and Transfer-Encoding\n")
        codings = [c.strip().lower() for c in coding.split(b",")]
        if codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
            raise _Reject(400, b"chunked must be the final transfer coding, once\n")
        if len(codings) > 1:
            raise _Reject(501, b"unsupported transfer coding\n")
        return authority, "chunked", upgrade

    def _absolute_form(self, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes, bytes]:
        """Absolute-form target: route by its authority and send that as Host (RFC 9112 3.2.2)."""
        try:
            url = httptools.parse_url(self._url)
            path, query = split_target(
                (url.path or b"/") + (b"?" + url.query if url.query else b"")
            )
        except (httptools.HttpParserInvalidURLError, BadTarget):
            raise _Reject(400, b"invalid request target\n") from None
        authority = url.host + (b":%d" % url.port if url.port else b"")
        headers[:] = [(n, v) for n, v in headers if n != b"host"] + [(b"host", authority)]
        return path, query, authority

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.on_request_body(body)

    def on_message_complete(self) -> None:
        ex = self.parsing
        if ex is not None:
            ex.on_request_complete()
            if ex is not self.current or ex.finished:
                self.parsing = None

    # -- writing -------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        if self.transport is not None and not self.closed:
            self.transport.writelines(parts)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.current is not None:
            self.current.downstream_pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.current is not None:
            self.current.downstream_resume()

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
        self.runtime.observe(ex)
        if ex is not self.current:
            return
        self.current = None
        if self.transport is None or self.closed:
            return
        if abort:
            self.transport.abort()
            return
        if not self.keep_alive or not ex.request_done or self.draining_now() or self.tunnel:
            self.transport.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.keep_alive = nxt.client_keep_alive
            self.current = nxt
            if not self.queue:
                self.resume_reading("pipeline")
            nxt.begin()
            return
        if self.broken:
            if self._deferred is not None:
                self.transport.write(render(*self._deferred, close=True))
            self.transport.close()
            return
        self._arm(self.runtime.settings.idle_timeout)

    def draining_now(self) -> bool:
        return self.runtime.draining

    def trusts_https(self, req: RequestHead) -> bool:
        """Behind a trusted TLS-terminating hop (``X-Forwarded-Proto: https``) a server's
        ``httpsRedirect`` would loop (istio/istio#16778), so it is not applied."""
        return self.trust_forwarded and req.headers.get(b"x-forwarded-proto") == b"https"

    # -- deadlines --------------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._on_deadline)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_deadline(self) -> None:
        self._timer = None
        if self.transport is None or self.closed or self.current is not None:
            return
        if self._url or self._headers:
            self.transport.write(render(408, b"request header timeout\n", close=True))
        self.transport.close()
