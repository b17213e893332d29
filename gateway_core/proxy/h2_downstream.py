"""Data path: one HTTP/2 client connection (h2 over TLS ALPN, or h2c with prior knowledge).

The sans-IO codec (``codec/http2.py``) turns bytes into events; each request stream becomes an
``Exchange`` exactly as an HTTP/1.1 request does, with an ``H2Stream`` as its downstream: the
router and its attempts call the same response methods (head, body, end with trailers, local
reply) and the stream turns them into frames. Nothing here knows HTTP/1.1 wire format.

Flow control both ways, per stream: a request body is acknowledged (WINDOW_UPDATE) only once
the exchange has taken it, so a paused stream stops its own client stream and no other; a
response body the client does not read piles up in the codec's per-stream buffer, and above
``HIGH_WATER`` that stream's upstream stops being read until the window opens again.

Drain: GOAWAY, then open streams finish; the connection closes when the last one has.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, cast

from gateway_core.proxy.client_info import TlsFacts, tls_facts
from gateway_core.proxy.codec.events import (
    ConnectionFailed,
    Data,
    GoAway,
    Reset,
    Trailers,
    WindowOpened,
)
from gateway_core.proxy.codec.events import (
    RequestHead as H2RequestHead,
)
from gateway_core.proxy.codec.http2 import H2ServerCodec
from gateway_core.proxy.errors import report_internal_error
from gateway_core.proxy.exchange import Exchange
from gateway_core.proxy.h2_stream import H2Stream, request_from_head
from gateway_core.proxy.request_checks import BadRequest

if TYPE_CHECKING:
    from gateway_core.proxy.context import GatewayContext, ListenerContext
    from gateway_core.proxy.interfaces import ClientExchange

_log = logging.getLogger("gateway.h2")

GOAWAY_GRACE = 1.0
"""Seconds between the two GOAWAY frames of a drain (a generous round trip)."""
NO_ERROR = 0
PROTOCOL_ERROR = 1
INTERNAL_ERROR = 2
REFUSED_STREAM = 7
CANCEL = 8


class H2Downstream(asyncio.Protocol):
    """One HTTP/2 connection from a client; created by the HTTP/1.1 protocol when ALPN chose
    ``h2`` or the first bytes are the HTTP/2 preface."""

    def __init__(
        self,
        runtime: GatewayContext,
        listener: ListenerContext,
        route_table: str,
        scheme: bytes,
        peer: tuple[str, int],
        local: tuple[str, int],
    ) -> None:
        self.runtime = runtime
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.route_table = route_table
        self.scheme = scheme
        self.peer_address = peer
        self.local_address = local
        self.client_ip = peer[0] or "127.0.0.1"
        self.client_ip_bytes = self.client_ip.encode()
        self.trust_forwarded = runtime.settings.xff_trusted_hops > 0
        self.tls_facts: TlsFacts | None = None
        self.transport: asyncio.Transport | None = None
        self.codec = H2ServerCodec()
        self.streams: dict[int, H2Stream] = {}
        self.closed = False
        self.draining = False
        self.transport_paused = False
        self._flush_scheduled = False
        self.requests = 0
        self._timer: asyncio.TimerHandle | None = None
        self._idle_since = self.loop.time()
        settings = runtime.settings
        self._tick = min(settings.idle_timeout, settings.stream_idle_timeout)

    # -- connection lifecycle -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if self.listener.tls is not None and ssl_object is not None:
            self.tls_facts = tls_facts(self.listener.tls, ssl_object)
        self.runtime.connections.add(self)
        self.flush()  # our SETTINGS
        self._timer = self.loop.call_later(self._tick, self._on_timer)
        if self.runtime.draining:
            self.drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.runtime.connections.discard(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.lost()

    def eof_received(self) -> bool | None:
        return None  # HTTP/2 has no half-close of the connection: close it

    @property
    def current(self) -> object | None:
        """Busy while any stream is open (drain waits for it)."""
        return self if self.streams else None

    def data_received(self, data: bytes) -> None:
        try:
            events = self.codec.receive(data)
        except Exception as fault:  # the gateway's own bug, never the client's fault
            report_internal_error(self.runtime.metrics, fault, "HTTP/2 codec")
            self.abort()
            return
        for event in events:
            if isinstance(event, Data):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_data(event.data, event.end_stream)
                else:
                    self.codec.consumed(event.stream_id, len(event.data))
            elif isinstance(event, H2RequestHead):
                self._on_request(event)
            elif isinstance(event, Trailers):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.on_trailers(event.headers)
            elif isinstance(event, WindowOpened):
                self._window_opened(event.stream_id)
            elif isinstance(event, Reset):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    stream.lost()
            elif isinstance(event, GoAway | ConnectionFailed):
                self._connection_ended(event)
        self.flush()

    def _on_request(self, head: H2RequestHead) -> None:
        self.requests += 1
        if self.draining:
            self.codec.reset(head.stream_id, REFUSED_STREAM)
            return
        stream = H2Stream(self, head.stream_id)
        try:
            req, framing = request_from_head(self, head)
        except BadRequest as rej:
            self.runtime.metrics.record_protocol_error(rej.status)
            stream.reply_bad_request(rej.status, rej.message, head.method == b"HEAD")
            return
        self.streams[head.stream_id] = stream
        ex = Exchange(stream, req, framing, False)
        stream.ex = ex
        ex.begin()

    def _window_opened(self, stream_id: int) -> None:
        if stream_id == 0:
            for each in list(self.streams.values()):
                each.window_opened()
            return
        one = self.streams.get(stream_id)
        if one is not None:
            one.window_opened()

    def _connection_ended(self, event: GoAway | ConnectionFailed) -> None:
        if isinstance(event, ConnectionFailed):
            self.runtime.metrics.record_protocol_error(400)
            _log.debug("HTTP/2 connection error from %s: %s", self.client_ip, event.reason)
            self.flush()
            self.abort()
            return
        # The client goes away: streams it opened up to last_stream_id finish.
        self.draining = True
        if not self.streams:
            self.close()

    # -- writing ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the codec has, only while the socket takes it: frames a client forces
        us to send (PING and SETTINGS acknowledgements) but never reads stay in the codec,
        where its outbound-frame limits end the connection."""
        if self.transport_paused or self.closed or self.transport is None:
            return
        data = self.codec.data_to_send()
        if data:
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write once per event-loop turn: responses finished by many upstream reads in one
        turn go out in one TLS record and one system call."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def pause_writing(self) -> None:
        self.transport_paused = True
        for stream in self.streams.values():
            stream.pause_upstream()

    def resume_writing(self) -> None:
        self.transport_paused = False
        self.flush()
        for stream in list(self.streams.values()):
            stream.window_opened()

    def stream_finished(self, stream: H2Stream, ex: ClientExchange, abort: bool) -> None:
        self.runtime.observe(ex, self.loop.time())
        self.streams.pop(stream.stream_id, None)
        if stream.reset_by_peer or self.closed:
            pass
        elif abort:
            self.codec.reset(stream.stream_id, INTERNAL_ERROR)
        elif not ex.request_done:
            self.codec.reset(stream.stream_id, NO_ERROR)  # RFC 9113 §8.1: body not needed
        self.flush_soon()
        if not self.streams:
            self._idle_since = self.loop.time()
            if self.draining:
                self._final_goaway()  # the real last stream id, then close

    def drain(self) -> None:
        """Graceful: GOAWAY, no new streams; the connection closes after the open ones."""
        if self.draining and not self.streams:
            self.close()
            return
        self.draining = True
        # Two steps (RFC 9113 §6.8): first "no new streams soon" (the highest id), then, a
        # round trip later, the real last stream id; streams already sent are not refused.
        self.codec.goaway(NO_ERROR, last_stream_id=2**31 - 1)
        self.flush()
        self.loop.call_later(GOAWAY_GRACE, self._final_goaway)

    def _final_goaway(self) -> None:
        if self.closed:
            return
        self.codec.goaway(NO_ERROR)
        self.flush()
        if not self.streams:
            self.close()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- deadlines ----------------------------------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        now = self.loop.time()
        settings = self.runtime.settings
        if self.streams:
            for stream in list(self.streams.values()):
                stream.check_idle(now, settings.stream_idle_timeout)
        elif now - self._idle_since >= settings.idle_timeout:
            self.codec.goaway(NO_ERROR)
            self.close()
            return
        self._timer = self.loop.call_later(self._tick, self._on_timer)
