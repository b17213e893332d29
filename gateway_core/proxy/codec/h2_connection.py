"""Data path: the HTTP/2 connection state both HTTP/2 codecs share (sans-IO, on h2).

Bytes go in through ``receive`` and come out of ``data_to_send``; nothing here touches a
socket or the event loop. Flow control both ways:

- Sending: ``send_data`` writes what the stream's and the connection's windows allow and keeps
  the rest per stream; a WINDOW_UPDATE (or a larger SETTINGS_INITIAL_WINDOW_SIZE) sends more
  and reports :class:`WindowOpened`. ``buffered(stream_id)`` is what a producer compares with
  its high-water mark, so a peer that never opens its window costs that much and no more.
- Receiving: a stream's window is handed back only when the owner calls ``consumed`` for
  bytes it forwarded, so a slow destination holds back only its own stream; padding, and the
  unconsumed bytes of a stream that was reset, are handed back by the codec.

Outbound frames are counted until the owner takes them with ``data_to_send``; the owner takes
them only while its transport accepts writes, so a peer that makes us answer (PING, SETTINGS,
frames on reset streams) without reading hits ``max_outbound_control_frames`` (Envoy's
outbound flood limit) instead of growing our buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    DataReceived,
    RemoteSettingsChanged,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings
from hpack import HPACKDecodingError, OversizedHeaderListError
from hyperframe.frame import GoAwayFrame

from gateway_core.proxy.codec.events import (
    ConnectionFailed,
    Data,
    ErrorCode,
    Event,
    GoAway,
    Reset,
    Trailers,
    WindowOpened,
)
from gateway_core.proxy.codec.h2_guard import (
    DEFAULT_LIMITS,
    FrameGuard,
    H2Limits,
    count_frames,
    without_goaway,
)
from gateway_core.proxy.codec.h2_headers import MalformedHeaders, parse_trailers
from gateway_core.proxy.codec.h2_streams import H2Streams, _Stream

_DEFAULT_WINDOW = 65_535
MAX_STREAM_ID = 2**31 - 1
_SLICE = 16_384
"""h2 is handed at most this many bytes at a time, and the limits are checked after each
slice: a flood trips after the slice that broke a limit, not after a whole read (up to 256 KiB,
some 10 000 streams of rapid reset, a third of a second of the event loop)."""


def _slices(pieces: list[bytes | memoryview | GoAway]) -> Iterator[bytes | memoryview | GoAway]:
    for piece in pieces:
        if isinstance(piece, GoAway) or len(piece) <= _SLICE:
            yield piece
            continue
        view = memoryview(piece)
        for start in range(0, len(view), _SLICE):
            yield view[start : start + _SLICE]


def h2_configuration(client: bool) -> H2Configuration:
    """How every connection of the gateway configures ``h2``: bytes in and out, and the
    library's header validation and normalisation off (the codec checks headers itself, in
    ``h2_headers``). bench/floor.py and bench/h2_library.py use it too, so the floor measures
    the library exactly as the gateway runs it."""
    return H2Configuration(
        client_side=client,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )


class H2Codec(H2Streams):
    """The shared half of :class:`H2ServerCodec` and :class:`H2ClientCodec`."""

    def __init__(self, client: bool, limits: H2Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        conn = H2Connection(h2_configuration(client))
        settings: dict[SettingCodes, int] = {
            SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_stream_window,
            SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
        }
        if client:
            settings[SettingCodes.ENABLE_PUSH] = 0
        else:
            settings[SettingCodes.MAX_CONCURRENT_STREAMS] = limits.max_concurrent_streams
        conn.local_settings = Settings(client=client, initial_values=settings)
        conn.max_inbound_frame_size = limits.max_frame_size
        conn.decoder.max_header_list_size = limits.max_header_list_size
        conn.initiate_connection()
        if limits.connection_window > _DEFAULT_WINDOW:
            conn.increment_flow_control_window(limits.connection_window - _DEFAULT_WINDOW)
        super().__init__(conn, FrameGuard(limits, server=not client))
        self._batch = 0
        self._cancelled: set[int] | None = None
        """Streams opened and reset within one ``receive``: the owner never hears of them."""
        self._dead = False
        self._goaway_sent: int | None = None
        self._goaway_received: int | None = None
        self._handlers: dict[type[Any], Callable[[Any, list[Event]], None]] = {
            DataReceived: self._on_data,
            WindowUpdated: self._on_window,
            StreamReset: self._on_reset,
            TrailersReceived: self._on_trailers,
            RemoteSettingsChanged: self._on_settings,
        }

    def receive(self, data: bytes) -> list[Event]:
        """Feed received bytes; the events they caused. Hostile input never raises."""
        if self._dead:
            return []
        guard = self._guard
        pieces = guard.scan(data)
        if guard.error is not None:
            code, reason = guard.error
            return [self._fail(code, reason, goaway=not guard.bad_preface)]
        self._take_h2()
        self._batch += 1
        events: list[Event] = []
        self._receive(pieces, events)
        cancelled = self._cancelled
        if cancelled is None:
            return events
        self._cancelled = None
        return [e for e in events if getattr(e, "stream_id", 0) not in cancelled]

    def _receive(self, pieces: list[bytes | memoryview | GoAway], events: list[Event]) -> None:
        handlers = self._handlers
        for piece in _slices(pieces):
            if isinstance(piece, GoAway):
                self._on_goaway(piece, events)
                continue
            try:
                h2_events = self._conn.receive_data(piece)
            except ProtocolError as exc:
                # h2 queued a GOAWAY of its own; ours says COMPRESSION_ERROR for a broken
                # HPACK block (RFC 9113 §4.3), where h2 says PROTOCOL_ERROR.
                code = int(exc.error_code)
                if isinstance(exc.__cause__, HPACKDecodingError) and not isinstance(
                    exc.__cause__, OversizedHeaderListError
                ):
                    code = ErrorCode.COMPRESSION_ERROR
                self._out.append(without_goaway(self._conn.data_to_send()))
                events.append(self._fail(code, str(exc) or type(exc).__name__, goaway=True))
                return
            except Exception as exc:  # h2, hpack or hyperframe choking on hostile input
                reason = f"h2 failed: {exc!r}"
                events.append(self._fail(ErrorCode.INTERNAL_ERROR, reason, goaway=True))
                return
            answered = self._conn.data_to_send()  # what h2 wrote by itself: ACKs, RST_STREAM
            if answered:
                frames, control = count_frames(answered)
                self._out_frames += frames
                self._out_control += control
                self._out.append(answered)
            for h2_event in h2_events:
                handler = handlers.get(type(h2_event))
                if handler is not None:
                    handler(h2_event, events)
                    if self._dead:
                        return
            if self._outbound_flood(events):
                return
        self._outbound_flood(events)

    def _outbound_flood(self, events: list[Event]) -> bool:
        """Fail the connection if the frames not yet taken by the transport pass the limits."""
        limits = self._limits
        if self._out_control > limits.max_outbound_control_frames:
            reason = "outbound control frame flood"
        elif self._out_frames > limits.max_outbound_frames:
            reason = "outbound frame flood"
        else:
            return False
        # The frames the flood made us owe are never sent: the GOAWAY goes out alone, so a
        # peer whose socket still takes bytes gets it before the connection is closed.
        self._out.clear()
        self._conn.clear_outbound_data_buffer()
        events.append(self._fail(ErrorCode.ENHANCE_YOUR_CALM, reason, goaway=True))
        return True

    def _on_data(self, event: DataReceived, out: list[Event]) -> None:
        sid = event.stream_id
        data = event.data
        flow = event.flow_controlled_length
        st = self._streams.get(sid)
        if st is None:  # a stream this codec already refused, rejected or reset
            if flow:
                self._conn.acknowledge_received_data(flow, sid)
            return
        n = len(data)
        if flow > n:  # padding: nobody downstream will ever consume it
            self._conn.acknowledge_received_data(flow - n, sid)
        st.unacked += n
        end = event.stream_ended is not None
        out.append(Data(sid, data, end))
        if end:
            st.remote_done = True
            if st.local_done:
                self._closed(sid, st)

    def _on_trailers(self, event: TrailersReceived, out: list[Event]) -> None:
        sid = event.stream_id
        st = self._streams.get(sid)
        if st is None:
            return
        try:
            fields = parse_trailers(event.headers, self._limits.max_header_fields)
        except MalformedHeaders:
            self._reject(sid, st, out)
            return
        out.append(Trailers(sid, fields))
        st.remote_done = True
        if st.local_done:
            self._closed(sid, st)

    def _on_reset(self, event: StreamReset, out: list[Event]) -> None:
        sid = event.stream_id
        st = self._streams.pop(sid, None)
        if st is not None:
            remote = bool(event.remote_reset)  # False: h2 reset it (a stream-level error)
            out.append(Reset(sid, int(event.error_code), remote))
            self._drop(sid, st)
            if remote:
                self._peer_reset(sid, st, out)

    def _on_window(self, event: WindowUpdated, out: list[Event]) -> None:
        if event.stream_id == 0:
            self._flush_all(out)
            return
        st = self._blocked.get(event.stream_id)
        if st is not None and self._flush(event.stream_id, st):
            out.append(WindowOpened(event.stream_id))

    def _on_settings(self, event: RemoteSettingsChanged, out: list[Event]) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._flush_all(out)

    def _on_goaway(self, event: GoAway, out: list[Event]) -> None:
        if self._goaway_received is None or event.last_stream_id < self._goaway_received:
            self._goaway_received = event.last_stream_id
        out.append(event)

    def _reject(self, sid: int, st: _Stream, out: list[Event]) -> None:
        """A malformed block on a stream the owner knows: reset it and say so."""
        del self._streams[sid]
        try:
            self._conn.reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
            self._out_control += 1
        except StreamClosedError:  # the block ended the stream both ways: nothing to reset
            pass
        self._drop(sid, st)
        out.append(Reset(sid, ErrorCode.PROTOCOL_ERROR, False))

    def _peer_reset(self, sid: int, st: _Stream, out: list[Event]) -> None:
        """Hook: the peer reset an open stream (the server counts premature resets)."""

    def _fail(self, code: int, reason: str, goaway: bool = False) -> ConnectionFailed:
        """The connection is beyond saving: queue GOAWAY (unless h2 has) and stop."""
        if goaway:
            self._write_goaway(code, self._last_processed())
        self._dead = True
        self._streams.clear()
        self._blocked.clear()
        self._holding.clear()
        self._draining.clear()
        return ConnectionFailed(code, reason)

    def _last_processed(self) -> int:
        return 0

    def _write_goaway(self, code: int, last_stream_id: int) -> None:
        self._take_h2()
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code)
        self._out.append(frame.serialize())

    def goaway(
        self, error_code: int = ErrorCode.NO_ERROR, last_stream_id: int | None = None
    ) -> None:
        """Send GOAWAY; open streams up to ``last_stream_id`` may finish.

        A graceful drain sends ``goaway(last_stream_id=2**31 - 1)`` first, then, a round trip
        later, ``goaway()``, whose default is every stream received so far.
        """
        if self._dead:
            return
        last = self._last_processed() if last_stream_id is None else last_stream_id
        if self._goaway_sent is not None:
            last = min(last, self._goaway_sent)
        self._goaway_sent = last
        self._write_goaway(error_code, last)

    def close(self) -> None:
        """The transport is gone: forget every stream and all pending bytes."""
        self._dead = True
        self._streams.clear()
        self._blocked.clear()
        self._draining.clear()
        self._out.clear()
        self._conn.clear_outbound_data_buffer()

    @property
    def failed(self) -> bool:
        """True once the connection failed or was closed: the codec accepts nothing more."""
        return self._dead

    @property
    def goaway_received(self) -> int | None:
        """The lowest last-stream-id of the peer's GOAWAY frames, if it sent any."""
        return self._goaway_received
