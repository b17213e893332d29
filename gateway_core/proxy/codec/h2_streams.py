"""Data path: per-stream HTTP/2 state under flow control, for both HTTP/2 codecs.

- Sending: ``send_data`` writes what the stream's and the connection's windows allow and keeps
  the rest per stream; when a window opens (WINDOW_UPDATE, a larger
  SETTINGS_INITIAL_WINDOW_SIZE) the receiving half calls ``_flush``/``_flush_all``, which send
  more and report :class:`WindowOpened`. ``buffered(stream_id)`` is what a producer compares
  with its high-water mark, so a peer that never opens its window costs that much, no more.
  Streams blocked on the connection window are served in turn, so none starves the others.
  The last body chunk a stream was given is held until the owner takes the output
  (``data_to_send``, once per event-loop turn): an end of stream that arrives in the meantime
  leaves in the same DATA frame, so a response whose body and end came in one upstream read
  costs one frame, not a DATA frame and an empty one with END_STREAM.
- Receiving: a stream's window is handed back only when the owner calls ``consumed`` for
  bytes it forwarded, so a slow destination holds back only its own stream. The codec hands
  back padding itself, and the unconsumed bytes of a stream that was reset.

Frames written are counted until the owner takes them with ``data_to_send``; the receiving
half compares the counts with Envoy's outbound flood limits.
"""

from __future__ import annotations

from h2.connection import H2Connection

from gateway_core.proxy.codec.events import ErrorCode, Event, Fields, WindowOpened
from gateway_core.proxy.codec.h2_guard import FrameGuard
from gateway_core.proxy.codec.h2_headers import trailers_to_h2


class _Stream:
    """What the codec keeps per open stream."""

    __slots__ = (
        "batch",
        "head_sent",
        "held",
        "local_done",
        "opened_at",
        "pending",
        "pending_end",
        "remote_done",
        "trailers",
        "unacked",
    )

    def __init__(self, opened_at: float, batch: int) -> None:
        self.opened_at = opened_at
        self.batch = batch
        self.unacked = 0
        self.pending: bytearray | None = None
        self.pending_end = False
        self.held: bytes | None = None
        """Body bytes not yet framed: the next ``send_data`` or ``data_to_send`` frames them."""
        self.trailers: Fields | None = None
        self.head_sent = False
        self.local_done = False
        self.remote_done = False


class H2Streams:
    """Open streams, their send buffers and receive accounting, over one ``H2Connection``."""

    def __init__(self, conn: H2Connection, guard: FrameGuard) -> None:
        self._conn = conn
        self._guard = guard
        self._streams: dict[int, _Stream] = {}
        self._draining: dict[int, int] = {}
        """Closed streams whose received bytes the owner has not consumed yet."""
        self._blocked: dict[int, _Stream] = {}
        """Streams with body bytes waiting for window, in the order they are served."""
        self._holding: dict[int, _Stream] = {}
        """Streams with a held chunk (``_Stream.held``)."""
        self._out: list[bytes] = []
        self._out_frames = 0
        self._out_control = 0
        self._finished = 0
        """Streams closed so far, normally or by a reset."""

    def data_to_send(self) -> bytes:
        """The bytes to write now; call it only while the transport accepts writes."""
        if self._holding:
            self._release_held()
        pending = self._conn.data_to_send()
        if self._out:
            if pending:
                self._out.append(pending)
            pending = b"".join(self._out)
            self._out.clear()
        self._out_frames = self._out_control = 0
        return pending

    def _take_h2(self) -> None:
        pending = self._conn.data_to_send()
        if pending:
            self._out.append(pending)

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send body bytes as far as flow control allows; keep the rest for later. Bytes
        that do not end the stream are held until the next call or ``data_to_send``."""
        st = self._streams.get(stream_id)
        if st is None or st.local_done or st.pending_end or st.trailers is not None:
            return  # the stream is gone (reset, refused) or already ended: drop, as Envoy does
        if not st.head_sent:
            raise ValueError(f"stream {stream_id}: body before the head")
        held = st.held
        if held is not None:
            st.held = None
            del self._holding[stream_id]
            if data:
                self._send(stream_id, st, held, False)
            else:
                data = held  # the end (or nothing) goes out with the held bytes
        if (
            not end_stream
            and data
            and st.pending is None
            and len(data) <= self._conn.local_flow_control_window(stream_id)
        ):  # what the window would not take waits in ``pending``, as before
            st.held = data
            self._holding[stream_id] = st
            return
        self._send(stream_id, st, data, end_stream)

    def _release_held(self) -> None:
        holding = self._holding
        self._holding = {}
        for sid, st in holding.items():
            held, st.held = st.held, None
            if held is not None:
                self._send(sid, st, held, False)

    def _send(self, stream_id: int, st: _Stream, data: bytes, end_stream: bool) -> None:
        if st.pending is not None:
            st.pending += data
            st.pending_end = end_stream
            return
        window = self._conn.local_flow_control_window(stream_id)
        n = len(data)
        if n <= window:
            if n == 0 and not end_stream:
                return
            self._emit(stream_id, data, end_stream)
            if end_stream:
                self._local_end(stream_id, st)
            return
        if window > 0:
            self._emit(stream_id, memoryview(data)[:window], False)
        st.pending = bytearray(memoryview(data)[window:])
        st.pending_end = end_stream
        self._blocked[stream_id] = st

    def send_trailers(self, stream_id: int, headers: Fields) -> None:
        """End the stream with trailer fields (after any buffered body bytes)."""
        st = self._streams.get(stream_id)
        if st is None or st.local_done or st.pending_end or st.trailers is not None:
            return
        if not st.head_sent:
            raise ValueError(f"stream {stream_id}: trailers before the head")
        held = st.held
        if held is not None:
            st.held = None
            del self._holding[stream_id]
            self._send(stream_id, st, held, False)
        fields = trailers_to_h2(headers)
        if st.pending is not None:
            st.trailers = fields
            return
        self._conn.send_headers(stream_id, fields, end_stream=True)
        self._out_frames += 1
        self._local_end(stream_id, st)

    def buffered(self, stream_id: int) -> int:
        """Body bytes of this stream not yet written: waiting for the peer's window, or held."""
        st = self._streams.get(stream_id)
        if st is None:
            return 0
        held = 0 if st.held is None else len(st.held)
        return held if st.pending is None else held + len(st.pending)

    def consumed(self, stream_id: int, n: int) -> None:
        """The owner forwarded ``n`` received body bytes: the peer may send that much more."""
        st = self._streams.get(stream_id)
        if st is not None:
            n = min(n, st.unacked)
            if n > 0:
                st.unacked -= n
                self._conn.acknowledge_received_data(n, stream_id)
            return
        left = self._draining.get(stream_id)
        if left:
            n = min(n, left)
            if n > 0:
                self._conn.acknowledge_received_data(n, stream_id)
                if left > n:
                    self._draining[stream_id] = left - n
                else:
                    del self._draining[stream_id]

    def reset(self, stream_id: int, error_code: int = ErrorCode.CANCEL) -> None:
        """Reset a stream (RST_STREAM); its buffered bytes are dropped."""
        st = self._streams.pop(stream_id, None)
        if st is None:
            return
        self._conn.reset_stream(stream_id, error_code)
        self._out_control += 1
        self._drop(stream_id, st)

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def _emit(self, stream_id: int, data: bytes | memoryview, end_stream: bool) -> None:
        """Write DATA frames; the windows were checked by the caller."""
        size = self._conn.max_outbound_frame_size
        n = len(data)
        if n <= size:
            self._conn.send_data(stream_id, data, end_stream=end_stream)
            frames = 1
        else:
            view = memoryview(data)
            frames = 0
            for offset in range(0, n, size):
                last = offset + size >= n
                self._conn.send_data(stream_id, view[offset : offset + size], end_stream and last)
                frames += 1
        self._out_frames += frames
        self._guard.data_frames += frames

    def _flush(self, stream_id: int, st: _Stream) -> bool:
        """Send what the windows allow of a blocked stream; True if anything went out."""
        buf = st.pending
        assert buf is not None
        window = self._conn.local_flow_control_window(stream_id)
        n = len(buf)
        if n > window:
            if window <= 0:
                return False
            chunk = bytes(buf[:window])
            del buf[:window]
            self._emit(stream_id, chunk, False)
            return True
        st.pending = None
        del self._blocked[stream_id]
        trailers = st.trailers
        self._emit(stream_id, memoryview(buf), st.pending_end and trailers is None)
        if trailers is not None:
            self._conn.send_headers(stream_id, trailers, end_stream=True)
            self._out_frames += 1
            self._local_end(stream_id, st)
        elif st.pending_end:
            self._local_end(stream_id, st)
        return True

    def _flush_all(self, out: list[Event]) -> None:
        """The connection window (or every stream's) opened: serve blocked streams in turn."""
        if not self._blocked:
            return
        conn = self._conn
        for sid, st in list(self._blocked.items()):
            if conn.outbound_flow_control_window <= 0:
                break
            if self._flush(sid, st):
                out.append(WindowOpened(sid))
                if sid in self._blocked:  # cut short by the connection: go to the back
                    del self._blocked[sid]
                    self._blocked[sid] = st

    def _local_end(self, sid: int, st: _Stream) -> None:
        st.local_done = True
        if st.remote_done:
            self._closed(sid, st)

    def _closed(self, sid: int, st: _Stream) -> None:
        """Both sides ended the stream."""
        del self._streams[sid]
        self._finished += 1
        if st.unacked:
            self._draining[sid] = st.unacked

    def _drop(self, sid: int, st: _Stream) -> None:
        """Forget a reset stream: its unconsumed bytes go back to the connection window."""
        self._finished += 1
        if st.held is not None:
            del self._holding[sid]
            st.held = None
        if st.pending is not None:
            del self._blocked[sid]
            st.pending = None
        if st.unacked:
            self._conn.acknowledge_received_data(st.unacked, sid)
            st.unacked = 0
