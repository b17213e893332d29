"""Tests for gateway_core/proxy/codec/h2_streams.py: how body bytes become DATA frames. The last
chunk is held until the owner takes the output, so an end of stream in the same event-loop
turn leaves in the same frame."""

from __future__ import annotations

from hyperframe.frame import DataFrame, Frame, HeadersFrame

from tests.gateway_core.proxy.codec.h2_testkit import RawClient, parse_frames


def _stream_frames(client: RawClient, stream_id: int = 1) -> list[Frame]:
    return [f for f in parse_frames(client.take_output()) if f.stream_id == stream_id]


def _opened() -> RawClient:
    client = RawClient()
    client.send(client.headers(1))
    client.take_output()
    return client


def _describe(frames: list[Frame]) -> list[tuple[str, bytes, bool]]:
    return [
        (
            type(f).__name__,
            bytes(f.data) if isinstance(f, DataFrame) else b"",
            "END_STREAM" in f.flags,
        )
        for f in frames
    ]


def test_a_body_and_its_end_in_one_turn_are_one_data_frame() -> None:
    client = _opened()
    server = client.server
    server.send_response_head(1, 200, [(b"content-length", b"2")])
    server.send_data(1, b"ok")
    assert server.buffered(1) == 2  # held, counted against the producer's high-water mark
    server.send_data(1, b"", end_stream=True)
    assert _describe(_stream_frames(client)) == [
        ("HeadersFrame", b"", False),
        ("DataFrame", b"ok", True),
    ]


def test_chunks_in_one_turn_keep_their_order_and_only_the_last_carries_the_end() -> None:
    client = _opened()
    server = client.server
    server.send_response_head(1, 200, [])
    for chunk in (b"a", b"b", b"c"):
        server.send_data(1, chunk)
    server.send_data(1, b"", end_stream=True)
    assert _describe(_stream_frames(client))[1:] == [
        ("DataFrame", b"a", False),
        ("DataFrame", b"b", False),
        ("DataFrame", b"c", True),
    ]


def test_taking_the_output_sends_a_held_chunk_without_waiting_for_the_end() -> None:
    """A streamed response (server-sent events, a gRPC stream): each turn's bytes go out in
    that turn; the end comes later, alone."""
    client = _opened()
    server = client.server
    server.send_response_head(1, 200, [])
    server.send_data(1, b"event 1")
    assert _describe(_stream_frames(client)) == [
        ("HeadersFrame", b"", False),
        ("DataFrame", b"event 1", False),
    ]
    assert server.buffered(1) == 0
    server.send_data(1, b"", end_stream=True)
    assert _describe(_stream_frames(client)) == [("DataFrame", b"", True)]


def test_trailers_follow_the_held_chunk() -> None:
    client = _opened()
    server = client.server
    server.send_response_head(1, 200, [(b"content-type", b"application/grpc")])
    server.send_data(1, b"\x00\x00\x00\x00\x00")
    server.send_trailers(1, [(b"grpc-status", b"0")])
    frames = _stream_frames(client)
    assert [type(f) for f in frames] == [HeadersFrame, DataFrame, HeadersFrame]
    assert "END_STREAM" in frames[2].flags and "END_STREAM" not in frames[1].flags


def test_a_reset_drops_the_held_chunk() -> None:
    client = _opened()
    server = client.server
    server.send_response_head(1, 200, [])
    server.send_data(1, b"never sent")
    server.reset(1)
    frames = _stream_frames(client)
    assert not [f for f in frames if isinstance(f, DataFrame)]
    assert server.buffered(1) == 0
