"""Tests: raw HTTP/2 peers built from hyperframe frames, and two codecs wired back to back."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

from gateway_core.proxy.codec.events import ConnectionFailed, Data, Event, Fields
from gateway_core.proxy.codec.h2_guard import PREFACE
from gateway_core.proxy.codec.http2 import H2ClientCodec, H2ServerCodec

GET: Fields = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/"),
]


def parse_frames(buf: bytes) -> list[Frame]:
    """Every whole frame in ``buf`` (a client preface at its start is skipped)."""
    if buf.startswith(PREFACE):
        buf = buf[len(PREFACE) :]
    out: list[Frame] = []
    view = memoryview(buf)
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        out.append(frame)
        view = view[9 + length :]
    return out


def goaways(buf: bytes) -> list[GoAwayFrame]:
    return [f for f in parse_frames(buf) if isinstance(f, GoAwayFrame)]


def resets(buf: bytes) -> list[tuple[int, int]]:
    return [(f.stream_id, f.error_code) for f in parse_frames(buf) if isinstance(f, RstStreamFrame)]


def data_bytes(buf: bytes, stream_id: int | None = None) -> int:
    return sum(
        len(f.data)
        for f in parse_frames(buf)
        if isinstance(f, DataFrame) and (stream_id is None or f.stream_id == stream_id)
    )


def headers_frame(
    stream_id: int, block: bytes, end_stream: bool, end_headers: bool
) -> HeadersFrame:
    """A HEADERS frame carrying an encoded header ``block``, with the flags asked for."""
    flags = [f for f, on in (("END_STREAM", end_stream), ("END_HEADERS", end_headers)) if on]
    return HeadersFrame(stream_id, block, flags=flags)


class RawClient:
    """An HTTP/2 client that writes exactly the frames a test asks for to a server codec."""

    def __init__(self, server: H2ServerCodec | None = None, settings: dict[int, int] | None = None):
        self.server = server if server is not None else H2ServerCodec()
        self.encoder = Encoder()
        self.events: list[Event] = []
        self.output = bytearray(self.server.data_to_send())
        hello = SettingsFrame(0)
        for key, value in (settings or {}).items():
            hello.settings[key] = value
        self.send(PREFACE + hello.serialize() + SettingsFrame(0, flags=["ACK"]).serialize())

    def send(self, *chunks: bytes | Frame, drain: bool = True) -> list[Event]:
        data = b"".join(c if isinstance(c, bytes) else c.serialize() for c in chunks)
        events = self.server.receive(data)
        self.events += events
        if drain:
            self.output += self.server.data_to_send()
        return events

    def take_output(self) -> bytes:
        self.output += self.server.data_to_send()
        out, self.output = bytes(self.output), bytearray()
        return out

    def block(self, fields: Fields) -> bytes:
        return self.encoder.encode(fields)

    def headers(
        self,
        stream_id: int,
        fields: Fields = GET,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> HeadersFrame:
        return headers_frame(stream_id, self.block(fields), end_stream, end_headers)

    def continuation(self, stream_id: int, data: bytes, end_headers: bool) -> ContinuationFrame:
        return ContinuationFrame(stream_id, data, flags=["END_HEADERS"] if end_headers else [])

    @staticmethod
    def data(stream_id: int, data: bytes, end_stream: bool = False) -> DataFrame:
        return DataFrame(stream_id, data, flags=["END_STREAM"] if end_stream else [])

    @staticmethod
    def rst(stream_id: int, code: int = 8) -> RstStreamFrame:
        return RstStreamFrame(stream_id, error_code=code)


class Pair:
    """A client codec and a server codec exchanging bytes in memory, as a socket would.

    ``server_reads``/``client_reads`` say for which streams each side hands received body
    bytes back at once (``consumed``); a test that wants a slow reader leaves a stream out
    and calls ``consumed`` itself.
    """

    def __init__(
        self,
        client: H2ClientCodec | None = None,
        server: H2ServerCodec | None = None,
        server_reads: Callable[[int], bool] = lambda stream_id: True,
        client_reads: Callable[[int], bool] = lambda stream_id: True,
    ) -> None:
        self.client = client if client is not None else H2ClientCodec()
        self.server = server if server is not None else H2ServerCodec()
        self.server_reads = server_reads
        self.client_reads = client_reads
        self.server_events: list[Event] = []
        self.client_events: list[Event] = []
        self.pump()

    def pump(self, rounds: int = 200) -> tuple[list[Event], list[Event]]:
        """Pass bytes both ways until neither side has any; the events each side saw."""
        got_server: list[Event] = []
        got_client: list[Event] = []
        for _ in range(rounds):
            to_server = self.client.data_to_send()
            if to_server:
                events = self.server.receive(to_server)
                got_server += events
                self._consume(self.server, events, self.server_reads)
            to_client = self.server.data_to_send()
            if to_client:
                events = self.client.receive(to_client)
                got_client += events
                self._consume(self.client, events, self.client_reads)
            if not to_server and not to_client:
                break
        else:
            raise AssertionError(f"still exchanging bytes after {rounds} rounds")
        self.server_events += got_server
        self.client_events += got_client
        return got_server, got_client

    @staticmethod
    def _consume(
        codec: H2ClientCodec | H2ServerCodec, events: list[Event], reads: Callable[[int], bool]
    ) -> None:
        for event in events:
            if isinstance(event, Data) and event.data and reads(event.stream_id):
                codec.consumed(event.stream_id, len(event.data))


def body(events: list[Event], stream_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data) and e.stream_id == stream_id)


def failure(events: list[Event]) -> int | None:
    """The error code of the ConnectionFailed among ``events``, if any."""
    codes = [e.error_code for e in events if isinstance(e, ConnectionFailed)]
    assert len(codes) <= 1
    return codes[0] if codes else None


def goaway_code(client: RawClient) -> int | None:
    frames = goaways(client.take_output())
    assert len(frames) <= 1
    return frames[0].error_code if frames else None


def peak_bytes(action: Callable[[], object]) -> int:
    """Peak memory Python allocated while ``action`` ran."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
