"""Data path: HTTP/2 limits and the frame-header scan that enforces them before h2 parses.

h2 parses a frame only once the whole frame is buffered and keeps up to 64 CONTINUATION
frames of one header block, so an oversized frame or a CONTINUATION flood would cost memory
before h2 noticed. :class:`FrameGuard` reads only the 9-byte frame headers as bytes arrive
(one small loop per frame, no copy of the payload) and stops the connection at the first
frame that breaks a limit; the flood counters follow Envoy's ``Http2ProtocolOptions``
(``max_consecutive_inbound_frames_with_empty_payload``, ``max_inbound_priority_frames_per_stream``,
``max_inbound_window_update_frames_per_data_frame_sent``). It also lifts the peer's GOAWAY
frames out of the byte stream: h2 closes its whole state machine on a GOAWAY, which would
forbid finishing the streams a graceful GOAWAY lets finish, so the codec handles GOAWAY itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_core.proxy.codec.events import ErrorCode, GoAway


@dataclass(frozen=True, slots=True)
class H2Limits:
    """HTTP/2 settings and abuse limits of one connection (docs/http2-grpc.md lists them)."""

    max_concurrent_streams: int = 100
    """Server: SETTINGS_MAX_CONCURRENT_STREAMS. Client: a cap over the peer's own value."""
    initial_stream_window: int = 1 << 20
    """SETTINGS_INITIAL_WINDOW_SIZE: body bytes a peer may send on a stream before we consume."""
    connection_window: int = 16 << 20
    """The connection's receive window, opened with WINDOW_UPDATE on stream 0 at start."""
    max_frame_size: int = 1 << 14
    """SETTINGS_MAX_FRAME_SIZE; a longer frame is FRAME_SIZE_ERROR before it is buffered."""
    max_header_list_size: int = 1 << 16
    """SETTINGS_MAX_HEADER_LIST_SIZE, enforced on the decoded list and on the encoded block."""
    max_header_fields: int = 100
    """Envoy ``max_headers_count``: a block with more fields resets its stream."""
    max_outbound_frames: int = 10_000
    """Frames waiting in ``data_to_send`` before the peer is deemed to flood us (Envoy)."""
    max_outbound_control_frames: int = 1_000
    """Of those, PING/SETTINGS ACKs, RST_STREAM, WINDOW_UPDATE, GOAWAY (Envoy)."""
    max_consecutive_empty_frames: int = 1
    """DATA/HEADERS/CONTINUATION frames with no payload and no END_STREAM in a row (Envoy)."""
    max_priority_frames_per_stream: int = 100
    """PRIORITY frames allowed per opened stream, plus one stream's worth (Envoy)."""
    max_window_updates_per_data_frame: int = 10
    """WINDOW_UPDATE frames allowed per DATA frame we sent (Envoy's formula)."""
    premature_reset_min_lifetime: float = 1.0
    """A client reset earlier than this after the request, before a response, is premature."""
    premature_reset_total_streams: int = 500
    """Envoy's rapid-reset guard: past this many closed streams, half of them premature is
    too many; before it, half of this number is."""


DEFAULT_LIMITS = H2Limits()

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _PRIORITY, _SETTINGS, _PUSH_PROMISE = 0, 1, 2, 4, 5
_GOAWAY, _WINDOW_UPDATE, _CONTINUATION = 7, 8, 9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED = 0x4, 0x8


def count_frames(buf: bytes) -> tuple[int, int]:
    """How many frames ``buf`` (whole frames, as h2 writes them) holds, and how many are control."""
    frames = control = i = 0
    n = len(buf)
    while i + 9 <= n:
        ftype = buf[i + 3]
        if ftype != _DATA and ftype != _HEADERS and ftype != _CONTINUATION:
            control += 1
        frames += 1
        i += 9 + (buf[i] << 16 | buf[i + 1] << 8 | buf[i + 2])
    return frames, control


def without_goaway(buf: bytes) -> bytes:
    """``buf`` (whole frames) less a GOAWAY frame at its end, which h2 adds when it fails."""
    i = last = 0
    n = len(buf)
    while i + 9 <= n:
        last = i
        i += 9 + (buf[i] << 16 | buf[i + 1] << 8 | buf[i + 2])
    if n >= 9 and buf[last + 3] == _GOAWAY:
        return buf[:last]
    return buf


class FrameGuard:
    """Scans received bytes frame header by frame header; see the module docstring.

    ``scan`` returns what h2 should receive, in order: byte runs, and :class:`GoAway` events
    where the peer's GOAWAY frames were. A frame header cut by the end of ``data`` is held
    back until its last byte arrives. After a violation ``error`` is set and nothing more
    should reach h2. ``opened`` (streams) and ``data_frames`` (DATA frames we sent) feed the
    PRIORITY and WINDOW_UPDATE formulas; a client codec counts the streams it opens itself.
    """

    __slots__ = (
        "_block",
        "_empty_run",
        "_goaway",
        "_hdr",
        "_in_block",
        "_left",
        "_limits",
        "_max_sid",
        "_pad_flags",
        "_pad_len",
        "_preface",
        "_priority",
        "_server",
        "_settings_seen",
        "_window_updates",
        "bad_preface",
        "data_frames",
        "error",
        "opened",
    )

    def __init__(self, limits: H2Limits, server: bool) -> None:
        self._limits = limits
        self._server = server
        self._preface = PREFACE if server else b""
        self._hdr = b""
        self._left = 0
        self._settings_seen = False
        self._goaway: bytearray | None = None
        self._pad_flags = -1
        self._pad_len = 0
        self._in_block = False
        self._block = 0
        self._empty_run = 0
        self._priority = 0
        self._window_updates = 0
        self._max_sid = 0
        self.opened = 0
        self.data_frames = 0
        self.error: tuple[int, str] | None = None
        self.bad_preface = False

    def _fail(self, code: ErrorCode, reason: str) -> list[bytes | memoryview | GoAway]:
        self.error = (int(code), reason)
        return []

    def _empty(self, empty: bool) -> bool:
        """Count a DATA/HEADERS/CONTINUATION frame; True when the empty-frame limit broke."""
        if not empty:
            self._empty_run = 0
            return False
        self._empty_run += 1
        return self._empty_run > self._limits.max_consecutive_empty_frames

    def scan(self, data: bytes) -> list[bytes | memoryview | GoAway]:
        pieces: list[bytes | memoryview | GoAway] = []
        i = 0
        if self._preface:
            k = min(len(self._preface), len(data))
            if data[:k] != self._preface[:k]:
                self.bad_preface = True
                return self._fail(ErrorCode.PROTOCOL_ERROR, "invalid connection preface")
            self._preface = self._preface[k:]
            i = k
        if self._hdr:
            data = self._hdr + data[i:]
            self._hdr = b""
            i = 0
        limits = self._limits
        start = 0
        n = len(data)
        feed_end = n
        while i < n:
            left = self._left
            if left:
                if self._pad_flags >= 0:
                    flags, self._pad_flags = self._pad_flags, -1
                    empty = self._pad_len - 1 - data[i] <= 0 and not flags & _END_STREAM
                    if self._empty(empty):
                        return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "empty frame flood")
                take = min(left, n - i)
                self._left = left - take
                if self._goaway is not None:
                    self._goaway += data[i : i + take]
                    if not self._left:
                        payload, self._goaway = self._goaway, None
                        pieces.append(
                            GoAway(
                                int.from_bytes(payload[:4]) & 0x7FFFFFFF,
                                int.from_bytes(payload[4:8]),
                                True,
                            )
                        )
                        start = i + take
                i += take
                continue
            if n - i < 9:
                self._hdr = data[i:]
                feed_end = i
                break
            length = data[i] << 16 | data[i + 1] << 8 | data[i + 2]
            ftype = data[i + 3]
            flags = data[i + 4]
            if length > limits.max_frame_size:
                return self._fail(ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if not self._settings_seen:
                if ftype != _SETTINGS or flags & _ACK:
                    return self._fail(ErrorCode.PROTOCOL_ERROR, "first frame is not SETTINGS")
                self._settings_seen = True
            if ftype in (_DATA, _HEADERS, _CONTINUATION):
                if ftype == _HEADERS:
                    sid = (data[i + 5] & 0x7F) << 24 | data[i + 6] << 16 | data[i + 7] << 8
                    sid |= data[i + 8]
                    if self._server and sid > self._max_sid:
                        self._max_sid = sid
                        self.opened += 1
                    if not flags & _END_HEADERS:
                        self._in_block = True
                        self._block = length
                elif ftype == _CONTINUATION and self._in_block:
                    self._block += length
                    if self._block > limits.max_header_list_size:
                        return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "header block too large")
                    if flags & _END_HEADERS:
                        self._in_block = False
                if flags & _PADDED and ftype != _CONTINUATION and length:
                    if i + 9 == n:  # the pad length byte comes with the next read
                        self._pad_flags, self._pad_len = flags, length
                    elif self._empty(length - 1 - data[i + 9] <= 0 and not flags & _END_STREAM):
                        return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "empty frame flood")
                elif self._empty(
                    length == 0 and not (flags & _END_STREAM and ftype != _CONTINUATION)
                ):
                    return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "empty frame flood")
            elif ftype == _WINDOW_UPDATE:
                self._window_updates += 1
                allowed = self.opened + limits.max_window_updates_per_data_frame * self.data_frames
                if self._window_updates > 1 + 2 * allowed:
                    return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "WINDOW_UPDATE flood")
            elif ftype == _PRIORITY:
                self._priority += 1
                if self._priority > limits.max_priority_frames_per_stream * (1 + self.opened):
                    return self._fail(ErrorCode.ENHANCE_YOUR_CALM, "PRIORITY flood")
            elif ftype == _PUSH_PROMISE:
                if not flags & _END_HEADERS:
                    self._in_block = True
                    self._block = length
            elif ftype == _GOAWAY:
                if self._in_block or data[i + 5] | data[i + 6] | data[i + 7] | data[i + 8]:
                    return self._fail(ErrorCode.PROTOCOL_ERROR, "GOAWAY out of place")
                if length < 8:
                    return self._fail(ErrorCode.FRAME_SIZE_ERROR, "short GOAWAY")
                if i > start:
                    pieces.append(memoryview(data)[start:i])
                self._goaway = bytearray()
                start = n  # nothing of this frame reaches h2; reset when it ends
            i += 9
            self._left = length
        if self._goaway is None and feed_end > start:
            pieces.append(
                data if start == 0 and feed_end == n else memoryview(data)[start:feed_end]
            )
        return pieces
