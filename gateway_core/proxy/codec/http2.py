"""Data path: the HTTP/2 codecs, downstream (server side) and upstream (client side).

Both are sans-IO state machines over h2 (see ``h2_connection`` for the shared flow control
and flood limits); they speak the events of ``codec.events``.

The server codec refuses, with RST_STREAM REFUSED_STREAM, streams the client opens above the
last stream id of a GOAWAY it sent, and resets malformed requests with PROTOCOL_ERROR
without telling the owner. It counts premature resets as Envoy does against Rapid Reset
(CVE-2023-44487): a stream the client resets before any response head and within
``premature_reset_min_lifetime`` of its request is premature; once half of the closed streams
are (judged over ``premature_reset_total_streams`` streams, or as soon as half that number is
reached), the connection gets GOAWAY ENHANCE_YOUR_CALM. A stream opened and reset within one
``receive`` is never reported at all.

The client codec opens streams within the peer's SETTINGS_MAX_CONCURRENT_STREAMS and its own
cap, and when the peer's GOAWAY arrives it reports each of its streams above the GOAWAY's
last stream id as :class:`Reset` with REFUSED_STREAM: the peer never processed them, so a
retry is safe.
"""

from __future__ import annotations

from typing import Any

from h2.events import (
    InformationalResponseReceived,
    RemoteSettingsChanged,
    RequestReceived,
    ResponseReceived,
)
from h2.settings import SettingCodes

from gateway_core.proxy.codec.events import (
    ErrorCode,
    Event,
    Fields,
    GoAway,
    RequestHead,
    Reset,
    ResponseHead,
    SettingsChanged,
)
from gateway_core.proxy.codec.h2_connection import MAX_STREAM_ID, H2Codec
from gateway_core.proxy.codec.h2_guard import DEFAULT_LIMITS, H2Limits
from gateway_core.proxy.codec.h2_headers import (
    MalformedHeaders,
    parse_request,
    parse_response,
    request_to_h2,
    response_to_h2,
)
from gateway_core.proxy.codec.h2_streams import _Stream
from gateway_core.utils.clock import Clock, MonotonicClock


class NoStreamAvailable(Exception):
    """``start_request`` was called while ``can_open_stream()`` was False."""


class H2ServerCodec(H2Codec):
    """Downstream HTTP/2: requests in, responses out."""

    def __init__(self, limits: H2Limits = DEFAULT_LIMITS, clock: Clock | None = None) -> None:
        super().__init__(client=False, limits=limits)
        self._clock = clock if clock is not None else MonotonicClock()
        self._premature = 0
        self._handlers[RequestReceived] = self._on_request

    def _on_request(self, event: RequestReceived, out: list[Event]) -> None:
        sid = event.stream_id
        if self._goaway_sent is not None and sid > self._goaway_sent:
            self._conn.reset_stream(sid, ErrorCode.REFUSED_STREAM)
            self._out_control += 1
            return
        try:
            method, scheme, authority, path, fields = parse_request(
                event.headers, self._limits.max_header_fields
            )
        except MalformedHeaders:
            self._conn.reset_stream(sid, ErrorCode.PROTOCOL_ERROR)
            self._out_control += 1
            return
        st = _Stream(self._clock.monotonic(), self._batch)
        self._streams[sid] = st
        end = event.stream_ended is not None
        st.remote_done = end
        out.append(RequestHead(sid, method, scheme, authority, path, fields, end))

    def _peer_reset(self, sid: int, st: _Stream, out: list[Event]) -> None:
        if st.batch == self._batch:
            if self._cancelled is None:
                self._cancelled = {sid}
            else:
                self._cancelled.add(sid)
        limits = self._limits
        if st.head_sent or (
            self._clock.monotonic() - st.opened_at >= limits.premature_reset_min_lifetime
        ):
            return
        self._premature += 1
        total = limits.premature_reset_total_streams
        if self._premature * 2 >= (self._finished if self._finished >= total else total):
            reason = "too many premature stream resets"
            out.append(self._fail(ErrorCode.ENHANCE_YOUR_CALM, reason, goaway=True))

    def _last_processed(self) -> int:
        return int(self._conn.highest_inbound_stream_id)

    def send_response_head(
        self, stream_id: int, status: int, headers: Fields, end_stream: bool = False
    ) -> None:
        """Send a final response head (status 200-599)."""
        st = self._streams.get(stream_id)
        if st is None or st.head_sent:
            return
        self._conn.send_headers(stream_id, response_to_h2(status, headers), end_stream=end_stream)
        self._out_frames += 1
        st.head_sent = True
        if end_stream:
            self._local_end(stream_id, st)

    def send_informational(self, stream_id: int, status: int, headers: Fields) -> None:
        """Send a 1xx response head (100, 103, ...); a final one must follow."""
        if not 100 <= status < 200 or status == 101:
            raise ValueError(f"{status} is not an informational status HTTP/2 can carry")
        st = self._streams.get(stream_id)
        if st is None or st.head_sent:
            return
        self._conn.send_headers(stream_id, response_to_h2(status, headers), end_stream=False)
        self._out_frames += 1


class H2ClientCodec(H2Codec):
    """Upstream HTTP/2: requests out, responses in."""

    def __init__(self, limits: H2Limits = DEFAULT_LIMITS) -> None:
        super().__init__(client=True, limits=limits)
        self._handlers[ResponseReceived] = self._on_response
        self._handlers[InformationalResponseReceived] = self._on_response

    @property
    def available_streams(self) -> int:
        """How many more streams may be opened now."""
        if self._dead or self._goaway_received is not None or self._goaway_sent is not None:
            return 0
        if self._conn.highest_outbound_stream_id >= MAX_STREAM_ID - 2:
            return 0
        peer = self._conn.remote_settings.max_concurrent_streams
        return max(0, min(peer, self._limits.max_concurrent_streams) - len(self._streams))

    def can_open_stream(self) -> bool:
        return self.available_streams > 0

    def start_request(
        self,
        method: bytes,
        scheme: bytes,
        authority: bytes,
        path: bytes,
        headers: Fields,
        end_stream: bool = False,
    ) -> int:
        """Open a stream with this request head; its stream id. Check ``can_open_stream``."""
        if not self.can_open_stream():
            raise NoStreamAvailable("no stream can be opened on this connection now")
        conn = self._conn
        sid = int(conn.get_next_available_stream_id())
        block = request_to_h2(method, scheme, authority, path, headers)
        conn.send_headers(sid, block, end_stream=end_stream)
        st = _Stream(0.0, self._batch)
        st.head_sent = True
        st.local_done = end_stream
        self._streams[sid] = st
        self._out_frames += 1
        self._guard.opened += 1
        return sid

    def _on_response(self, event: Any, out: list[Event]) -> None:
        sid = event.stream_id
        st = self._streams.get(sid)
        if st is None:
            return
        try:
            status, fields = parse_response(event.headers, self._limits.max_header_fields)
        except MalformedHeaders:
            self._reject(sid, st, out)
            return
        end = status >= 200 and event.stream_ended is not None
        out.append(ResponseHead(sid, status, fields, end))
        if end:
            st.remote_done = True
            if st.local_done:
                self._closed(sid, st)

    def _on_settings(self, event: RemoteSettingsChanged, out: list[Event]) -> None:
        super()._on_settings(event, out)
        changed = event.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
        if changed is not None:
            out.append(SettingsChanged(int(changed.new_value)))

    def _on_goaway(self, event: GoAway, out: list[Event]) -> None:
        super()._on_goaway(event, out)
        for sid in [sid for sid in self._streams if sid > event.last_stream_id]:
            st = self._streams.pop(sid)
            self._conn.reset_stream(sid, ErrorCode.CANCEL)
            self._out_control += 1
            self._drop(sid, st)
            out.append(Reset(sid, ErrorCode.REFUSED_STREAM, True))
