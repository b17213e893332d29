"""Data path: ``ClientConnection``, what every client connection has, whatever it parses.

The base of ``DownstreamProtocol`` (which adds HTTP/1.1 parsing and request sequencing): the
transport and its addresses, TLS admission, writing and flow control in both directions, the
connection's deadlines, and ``internal_error``, where a bug in the gateway's own code ends up.

Deadlines: the request head must arrive within ``header_timeout`` of its first byte (408), a
keep-alive connection may idle ``idle_timeout``, and an exchange that shows no activity either
way for ``stream_idle_timeout`` is ended by it. One lazily re-armed timer per connection serves
all three, so a request costs no timer operations (it fires at least every shortest timeout).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol, cast

from gateway_core.proxy.client_info import TlsFacts, origin_ip, tls_facts, trusts_https
from gateway_core.proxy.errors import report_internal_error
from gateway_core.proxy.http1_wire import Http1ResponseWriter, render
from gateway_core.routing.request import RequestHead

if TYPE_CHECKING:
    from gateway_core.proxy.context import GatewayContext, ListenerContext
    from gateway_core.proxy.interfaces import ClientExchange


class H2ConnectionFactory(Protocol):
    """Builds the HTTP/2 connection a client connection is handed to (``H2Downstream``)."""

    def __call__(
        self,
        runtime: GatewayContext,
        listener: ListenerContext,
        route_table: str,
        scheme: bytes,
        peer: tuple[str, int],
        local: tuple[str, int],
        /,
    ) -> asyncio.Protocol: ...


class ClientConnection(Http1ResponseWriter, asyncio.Protocol):
    http2 = False
    """The client speaks HTTP/1.x on this connection (``useClientProtocol`` reads it); a
    connection that turns out to be HTTP/2 is handed to ``h2_connection`` (``_become_h2``)."""
    h2_connection: ClassVar[H2ConnectionFactory]
    """Set by the concrete connection class (``DownstreamProtocol``: ``H2Downstream``), so
    this base does not depend on the HTTP/2 side, which depends on the router."""

    __slots__ = (
        "_backlog",
        "_deadline",
        "_deferred",
        "_head_phase",
        "_headers",
        "_in_message",
        "_paused",
        "_tick",
        "_timer",
        "_url",
        "broken",
        "client_ip",
        "client_ip_bytes",
        "closed",
        "current",
        "eof",
        "listener",
        "local_address",
        "loop",
        "parsing",
        "peer_address",
        "queue",
        "requests",
        "route_table",
        "runtime",
        "scheme",
        "sniff",
        "tls_facts",
        "transport",
        "trust_forwarded",
        "tunnel",
        "write_paused",
    )

    def __init__(
        self,
        runtime: GatewayContext,
        listener: ListenerContext,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """``loop``: the running loop unless given (tests drive a connection with a fake
        clock)."""
        Http1ResponseWriter.__init__(self)
        self.runtime = runtime
        self.listener = listener
        self.loop = loop or asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.route_table = listener.default_route_table
        self.scheme = b"https" if listener.tls is not None else b"http"
        self.client_ip = ""
        self.client_ip_bytes = b""
        self.peer_address: tuple[str, int] = ("", 0)
        self.local_address: tuple[str, int] = ("", 0)
        self.trust_forwarded = runtime.settings.xff_trusted_hops > 0
        self.tls_facts: TlsFacts | None = None
        self.closed = False
        self.current: ClientExchange | None = None
        self.parsing: ClientExchange | None = None
        self.queue: collections.deque[ClientExchange] = collections.deque()
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
        self.broken = False
        """The request stream is unrecoverable: nothing more is parsed on this connection."""
        self._deferred: tuple[int, bytes] | None = None
        self._backlog = b""
        """Client bytes not parsed yet: the pipeline had no room for their requests."""
        self._in_message = False
        """The parser is inside a request (its head or body is incomplete)."""
        self.eof = False
        """The client half-closed: no more requests come."""

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
            self.tls_facts = tls_facts(tls, ssl_object)
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
        self.queue.clear()
        if current is not None:
            try:
                current.downstream_lost()
            except Exception as fault:
                self.internal_error(fault, "request path")

    def internal_error(self, fault: Exception, where: str) -> None:
        """The one place a bug in the gateway's own code ends up for this connection, once
        ``errors.py`` logged and counted it: the exchange being answered gets 500, or its
        response is cut when it already started; then the connection closes (the parser state
        is unknown). Nothing is charged to the client or to an upstream host."""
        report_internal_error(self.runtime.metrics, fault, where)
        transport = self.transport
        if self.closed or transport is None:
            return
        self.broken = True
        self.keep_alive = False
        self._backlog = b""
        self._deferred = None
        self.queue.clear()
        self.parsing = None
        self.pause_reading("broken")
        current = self.current
        try:
            if current is not None and not current.finished:
                current.internal_error()
                return
        except Exception as again:
            report_internal_error(self.runtime.metrics, again, where)
            transport.abort()
            return
        if current is None and self._in_message:
            transport.write(render(500, b"internal error\n", close=True))
        transport.close()

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

    # -- what exchanges ask of their connection ----------------------------------------------
    def draining_now(self) -> bool:
        return self.runtime.draining

    def origin_ip(self, req: RequestHead) -> str:
        return origin_ip(self.runtime.settings.xff_trusted_hops, req, self.client_ip)

    def trusts_https(self, req: RequestHead) -> bool:
        return trusts_https(self.trust_forwarded, req)

    def drain(self) -> None:
        """Drain step: an idle keep-alive connection closes now; a busy one after its
        response (``draining_now`` makes that response say ``connection: close``)."""
        if self.current is None and self.transport is not None:
            self.transport.close()

    def _become_h2(self, data: bytes) -> None:
        """Hand the connection to the HTTP/2 codec (ALPN ``h2``, or the h2c preface)."""
        transport = self.transport
        assert transport is not None
        self.sniff = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.runtime.connections.discard(self)
        h2 = self.h2_connection(
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

    # -- deadlines --------------------------------------------------------------------------------
    def _schedule(self, now: float) -> None:
        current = self.current
        settings = self.runtime.settings
        due = current.activity + settings.stream_idle_timeout if current else self._deadline
        at = min(due, now + self._tick)
        self._timer = self.loop.call_at(at if at > now else now + self._tick, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        try:
            self._check_deadlines()
        except Exception as fault:
            self.internal_error(fault, "request path")

    def _check_deadlines(self) -> None:
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
