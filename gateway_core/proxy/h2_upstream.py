"""Data path: one multiplexed HTTP/2 connection to an upstream host (h2c, or TLS with ALPN h2).

Each attempt opens a stream (``open_stream``) and gets an ``H2UpstreamStream`` handle with the
same request methods an HTTP/1.1 connection offers (body, end with trailers, cancel, pause);
responses reach the attempt through the same ``ResponseSink`` calls, trailers included. The
connection goes on serving other streams while one is slow: a response the client does not read
is not acknowledged (no WINDOW_UPDATE for that stream), so only that stream stalls.

Capacity (Envoy's codec client): streams at once are bounded by the host's
SETTINGS_MAX_CONCURRENT_STREAMS and ``maxConcurrentStreams``; after ``maxRequestsPerConnection``
streams, or a GOAWAY, the connection takes no new stream and closes when its last one ends.
A REFUSED_STREAM reset, or a GOAWAY that excludes a stream, means the host never processed it:
the attempt fails as ``refused-stream``, which is safe to retry.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from gateway_core.proxy import messages
from gateway_core.proxy.codec.events import (
    ConnectionFailed,
    Data,
    GoAway,
    Reset,
    ResponseHead,
    SettingsChanged,
    Trailers,
    WindowOpened,
)
from gateway_core.proxy.codec.http2 import H2ClientCodec

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import ExchangeView
    from gateway_core.proxy.upstream_conn import ResponseSink
    from gateway_core.upstream.connector import ConnectionOwner
    from gateway_core.upstream.mux_pool import MuxHostPool

_log = logging.getLogger("gateway.h2.upstream")

REFUSED_STREAM = 7
CANCEL = 8
SEND_HIGH_WATER = 262144
"""Request bytes buffered for a stream the host does not read: above this, the client's stream
is paused."""


class H2UpstreamStream:
    """One request on an HTTP/2 upstream connection, as its attempt sees it."""

    __slots__ = (
        "_paused",
        "_unacked",
        "conn",
        "done",
        "expect_no_body",
        "request_ended",
        "sink",
        "stream_id",
    )

    def __init__(self, conn: H2UpstreamConnection, sink: ResponseSink, stream_id: int) -> None:
        self.conn = conn
        self.sink: ResponseSink | None = sink
        self.stream_id = stream_id
        self.done = False
        self.expect_no_body = False
        self.request_ended = False
        self._paused = False
        self._unacked = 0

    @property
    def closed(self) -> bool:
        return self.done or self.conn.closed

    def send_body(self, data: bytes) -> None:
        conn = self.conn
        if self.done or conn.closed:
            return
        conn.codec.send_data(self.stream_id, data)
        conn.flush()
        sink = self.sink
        if sink is not None and conn.codec.buffered(self.stream_id) > SEND_HIGH_WATER:
            sink.upstream_pause()

    def end_body(self, trailers: list[tuple[bytes, bytes]] | None) -> None:
        conn = self.conn
        if self.done or conn.closed:
            return
        self.request_ended = True
        if trailers:
            conn.codec.send_trailers(self.stream_id, trailers)
        else:
            conn.codec.send_data(self.stream_id, b"", end_stream=True)
        conn.flush()

    def cancel(self) -> None:
        """The attempt is abandoned: RST_STREAM(CANCEL); the connection stays for others."""
        self.sink = None
        if not self.done:
            self.conn.end_stream(self, CANCEL)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        if self._unacked and not self.done:
            unacked, self._unacked = self._unacked, 0
            self.conn.codec.consumed(self.stream_id, unacked)
            self.conn.flush()

    def received(self, n: int) -> None:
        """Acknowledge response bytes unless the client is not reading them."""
        if self._paused:
            self._unacked += n
        else:
            self.conn.codec.consumed(self.stream_id, n)


class H2UpstreamConnection(asyncio.Protocol):
    multiplexed = True

    def __init__(self, owner: ConnectionOwner[Any]) -> None:
        pool = self.pool = cast("MuxHostPool", owner)
        self.codec = H2ClientCodec()
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2UpstreamStream] = {}
        self.closed = False
        self.going_away = False
        self.write_paused = False
        self.requests = 0
        self.idle_since = 0.0
        self._max_streams = pool.max_streams
        self._max_requests = pool.group.limits.max_requests_per_connection

    # -- lifecycle --------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=262144)
        self.flush()  # preface and SETTINGS

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            self._lose(stream, refused=False)
        self.pool.on_closed(self)

    @property
    def usable(self) -> bool:
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    def capacity(self) -> int:
        """How many more streams this connection may open now."""
        if self.going_away or not self.usable:
            return 0
        room = min(self.codec.available_streams, self._max_streams) - len(self.streams)
        if self._max_requests:
            room = min(room, self._max_requests - self.requests)
        return max(room, 0)

    def open_stream(
        self, sink: ResponseSink, ex: ExchangeView, expect_no_body: bool, complete: bool
    ) -> H2UpstreamStream:
        method, path, authority, headers = messages.request_fields(ex)
        stream_id = self.codec.start_request(
            method, b"https" if self.pool.tls is not None else b"http", authority, path,
            headers, end_stream=complete,
        )  # fmt: skip
        stream = H2UpstreamStream(self, sink, stream_id)
        stream.expect_no_body = expect_no_body
        stream.request_ended = complete
        self.streams[stream_id] = stream
        self.requests += 1
        self.flush()
        return stream

    def end_stream(self, stream: H2UpstreamStream, error_code: int | None) -> None:
        """The stream is over (complete, or reset with ``error_code``); its slot frees."""
        if stream.done:
            return
        stream.done = True
        self.streams.pop(stream.stream_id, None)
        if error_code is not None and not self.closed:
            self.codec.reset(stream.stream_id, error_code)
            self.flush()
        if self.going_away and not self.streams:
            self.close()
        else:
            self.pool.release(self)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.codec.goaway(0)
            self.flush()
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()

    def drain(self) -> None:
        """No new streams; close once the open ones end."""
        self.going_away = True
        if not self.streams:
            self.close()

    # -- I/O ----------------------------------------------------------------------------------
    def flush(self) -> None:
        """Write what the codec has, only while the socket takes it (see ``H2Downstream``)."""
        if self.write_paused or self.closed or self.transport is None:
            return
        data = self.codec.data_to_send()
        if data:
            self.transport.write(data)

    def pause_writing(self) -> None:
        self.write_paused = True
        for stream in self.streams.values():
            if stream.sink is not None:
                stream.sink.upstream_pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.flush()
        for stream in list(self.streams.values()):
            if stream.sink is not None:
                stream.sink.upstream_resume()

    def data_received(self, data: bytes) -> None:
        events = self.codec.receive(data)
        touched: dict[int, H2UpstreamStream] = {}
        for event in events:
            if isinstance(event, Data):
                stream = self.streams.get(event.stream_id)
                if stream is None:
                    self.codec.consumed(event.stream_id, len(event.data))
                    continue
                touched[event.stream_id] = stream
                if event.data:
                    stream.received(len(event.data))
                    if stream.sink is not None:
                        stream.sink.on_response_body(event.data)
                if event.end_stream:
                    self._complete(stream, None)
            elif isinstance(event, ResponseHead):
                stream = self.streams.get(event.stream_id)
                if stream is not None and stream.sink is not None and event.status >= 200:
                    touched[event.stream_id] = stream
                    framing = _framing(event.headers, event.end_stream or stream.expect_no_body)
                    stream.sink.on_response_head(event.status, event.headers, framing, True)
                    if event.end_stream and not stream.done:
                        self._complete(stream, None)
            elif isinstance(event, Trailers):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    touched[event.stream_id] = stream
                    self._complete(stream, event.headers)
            elif isinstance(event, WindowOpened):
                self._window_opened(event.stream_id)
            elif isinstance(event, Reset):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.done = True
                    self.streams.pop(event.stream_id, None)
                    self._lose(stream, refused=event.error_code == REFUSED_STREAM)
                    self.pool.release(self)
            elif isinstance(event, GoAway):
                self._go_away(event.last_stream_id)
            elif isinstance(event, SettingsChanged):
                self.pool.release(self)  # the host may allow more streams now
            elif isinstance(event, ConnectionFailed):
                _log.debug("HTTP/2 upstream connection error: %s", event.reason)
                self.flush()
                self.abort()
                return
        for stream in touched.values():
            if stream.sink is not None:
                stream.sink.flush()
        self.flush()

    def _complete(
        self, stream: H2UpstreamStream, trailers: list[tuple[bytes, bytes]] | None
    ) -> None:
        sink, stream.sink = stream.sink, None
        # The response is complete; a request body still being sent is no longer wanted.
        self.end_stream(stream, None if stream.request_ended else CANCEL)
        if sink is not None:
            if trailers:
                sink.on_response_trailers(trailers)
            sink.on_response_complete(True)
            sink.flush()

    def _lose(self, stream: H2UpstreamStream, *, refused: bool) -> None:
        sink, stream.sink = stream.sink, None
        if sink is not None:
            sink.on_upstream_lost(False, refused)

    def _go_away(self, last_stream_id: int) -> None:
        self.going_away = True
        for stream_id, stream in list(self.streams.items()):
            if stream_id > last_stream_id:  # never processed by the host: safe to retry
                stream.done = True
                del self.streams[stream_id]
                self._lose(stream, refused=True)
        if not self.streams:
            self.close()

    def _window_opened(self, stream_id: int) -> None:
        streams = self.streams.values() if stream_id == 0 else [self.streams.get(stream_id)]
        for stream in list(streams):
            if (
                stream is not None
                and stream.sink is not None
                and self.codec.buffered(stream.stream_id) <= SEND_HIGH_WATER // 2
            ):
                stream.sink.upstream_resume()


def _framing(headers: list[tuple[bytes, bytes]], no_body: bool) -> str:
    if no_body:
        return "none"
    for name, _ in headers:
        if name == b"content-length":
            return "length"
    return "chunked"
