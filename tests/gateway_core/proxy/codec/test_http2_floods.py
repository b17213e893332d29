"""Tests for gateway_core/proxy/codec/h2_guard.py and http2.py: floods from a hostile peer.

Rapid reset, CONTINUATION flood, HPACK bomb, SETTINGS/PING/empty/PRIORITY/WINDOW_UPDATE floods.
Each case crafts the frames itself and checks the codec's answer on the wire (GOAWAY or
RST_STREAM with the right error code) and that what the codec holds stays bounded.
"""

from __future__ import annotations

import pytest
from hyperframe.frame import (
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from gateway_core.proxy.codec.events import (
    Data,
    ErrorCode,
    RequestHead,
    Reset,
)
from gateway_core.proxy.codec.h2_guard import H2Limits
from gateway_core.proxy.codec.http2 import H2ServerCodec
from gateway_core.utils.clock import FakeClock
from tests.gateway_core.proxy.codec.h2_testkit import (
    GET,
    RawClient,
    failure,
    goaway_code,
    goaways,
    parse_frames,
    peak_bytes,
    resets,
)

EYC = ErrorCode.ENHANCE_YOUR_CALM


# -- rapid reset (CVE-2023-44487) --------------------------------------------------------------


def test_rapid_reset_in_one_read_is_never_seen_and_ends_in_goaway() -> None:
    client = RawClient()
    flood = b"".join(
        client.headers(sid).serialize() + client.rst(sid).serialize()
        for sid in range(1, 2 * 300, 2)
    )
    events = client.send(flood)
    assert failure(events) == EYC
    assert not any(isinstance(e, RequestHead | Reset) for e in events)
    assert goaway_code(client) == EYC
    assert client.server.open_streams == 0


def test_rapid_reset_in_one_large_read_stops_parsing_at_the_slice_that_tripped() -> None:
    """10 000 pairs (254 KiB, a whole socket read): h2 is fed 16 KiB at a time, so the
    connection fails after some 630 streams, not after parsing all 10 000."""
    client = RawClient()
    flood = b"".join(
        client.headers(sid).serialize() + client.rst(sid).serialize() for sid in range(1, 20_000, 2)
    )
    assert failure(client.send(flood)) == EYC
    [goaway] = goaways(client.take_output())
    assert 499 <= goaway.last_stream_id < 2 * 700


def test_rapid_reset_across_reads_trips_at_half_the_total() -> None:
    client = RawClient()
    heads = 0
    for sid in range(1, 2 * 300, 2):
        heads += sum(isinstance(e, RequestHead) for e in client.send(client.headers(sid)))
        if failure(client.send(client.rst(sid))) is not None:
            break
    assert heads == 250  # premature_reset_total_streams / 2
    assert goaway_code(client) == EYC


def test_resets_after_a_second_or_after_the_response_head_are_not_premature() -> None:
    clock = FakeClock()
    client = RawClient(H2ServerCodec(clock=clock))
    for sid in range(1, 2 * 600, 2):
        client.send(client.headers(sid))
        if sid % 4 == 1:
            clock.advance(1.0)
        else:
            client.server.send_response_head(sid, 200, [])
        assert failure(client.send(client.rst(sid))) is None
    assert goaway_code(client) is None


def test_past_the_total_half_of_the_closed_streams_premature_is_too_many() -> None:
    client = RawClient()
    for sid in range(1, 2 * 300, 2):  # 300 streams answered in full
        client.send(client.headers(sid))
        client.server.send_response_head(sid, 200, [], end_stream=True)
    premature = 0
    sid = 601
    while failure(client.send(client.headers(sid), client.rst(sid))) is None:
        premature += 1
        sid += 2
        assert premature < 1000
    # fails once premature * 2 >= closed, closed = 300 + premature (and closed >= 500)
    assert premature + 1 == 300
    assert goaway_code(client) == EYC


# -- CONTINUATION flood ------------------------------------------------------------------------


def test_continuation_flood_stops_at_the_header_list_limit_before_h2_buffers_it() -> None:
    client = RawClient()
    start = client.headers(1, end_headers=False)
    chunk = b"\x00" * 16384
    frames = [start.serialize()] + [
        client.continuation(1, chunk, end_headers=False).serialize() for _ in range(1000)
    ]
    fed = 0
    for frame in frames:
        fed += len(frame)
        if failure(client.send(frame)) is not None:
            break
    assert fed == len(frames[0]) + 4 * len(frames[1])  # 4 x 16 KiB of CONTINUATION pass 64 KiB
    assert goaway_code(client) == EYC

    flood = b"".join(frames)  # the same 16 MiB in one read: h2 is never handed it
    other = RawClient()
    assert peak_bytes(lambda: other.send(flood)) < 256 * 1024
    assert failure(other.events) == EYC


def test_empty_continuation_frames_are_an_empty_frame_flood() -> None:
    client = RawClient()
    client.send(client.headers(1, end_headers=False))
    assert failure(client.send(client.continuation(1, b"", end_headers=False))) is None
    assert failure(client.send(client.continuation(1, b"", end_headers=False))) == EYC
    assert goaway_code(client) == EYC


# -- HPACK bomb ---------------------------------------------------------------------------------


def test_dynamic_table_larger_than_advertised_is_a_compression_error() -> None:
    client = RawClient()
    client.encoder.header_table_size = 1 << 20  # emits a size update the server never allowed
    assert failure(client.send(client.headers(1))) == ErrorCode.COMPRESSION_ERROR
    assert goaway_code(client) == ErrorCode.COMPRESSION_ERROR


def test_garbage_hpack_is_a_compression_error() -> None:
    client = RawClient()
    bad = HeadersFrame(1, b"\xff\xff\xff\xff\xff", flags=["END_HEADERS", "END_STREAM"])
    assert failure(client.send(bad)) == ErrorCode.COMPRESSION_ERROR


def test_header_list_inflating_past_the_limit_is_refused_with_bounded_memory() -> None:
    client = RawClient()
    big = [(b"x-big", b"a" * 4000)]
    client.send(client.headers(1, GET + big))  # puts 4 KB into the dynamic table
    bomb = client.headers(3, GET + big * 1000)  # 1000 one-byte references: 4 MB decoded
    assert len(bomb.data) < 1100
    assert peak_bytes(lambda: client.send(bomb)) < 512 * 1024
    assert failure(client.events) == EYC
    frames = goaways(client.take_output())
    assert [(f.error_code, f.last_stream_id) for f in frames] == [(EYC, 1)]


def test_too_many_header_fields_reset_only_that_stream() -> None:
    client = RawClient()
    events = client.send(client.headers(1, GET + [(b"x-%d" % i, b"v") for i in range(120)]))
    assert events == []
    assert resets(client.take_output()) == [(1, ErrorCode.PROTOCOL_ERROR)]
    assert [type(e) for e in client.send(client.headers(3))] == [RequestHead]


def test_malformed_request_resets_the_stream_and_its_data_is_returned() -> None:
    limits = H2Limits(initial_stream_window=65535, connection_window=65535)
    client = RawClient(H2ServerCodec(limits))
    client.send(client.headers(1, [*GET, (b"connection", b"close")], end_stream=False))
    assert resets(client.take_output()) == [(1, ErrorCode.PROTOCOL_ERROR)]
    for _ in range(5):  # more than the connection window, sent on the refused stream
        client.send(DataFrame(1, b"x" * 16384))
    client.send(client.headers(3, end_stream=False))
    client.send(DataFrame(3, b"y" * 16384))
    assert failure(client.events) is None
    assert [len(e.data) for e in client.events if isinstance(e, Data)] == [16384]


def test_padding_is_handed_back_by_the_codec() -> None:
    limits = H2Limits(initial_stream_window=65535, connection_window=65535)
    client = RawClient(H2ServerCodec(limits))
    client.send(client.headers(1, end_stream=False))
    padded = DataFrame(1, b"p", flags=["PADDED"], pad_length=255)
    for _ in range(300):  # 300 x 257 flow-controlled bytes: four times either window
        for event in client.send(padded):
            if isinstance(event, Data):
                client.server.consumed(1, len(event.data))  # the owner hands back its 1 byte
    assert failure(client.events) is None
    assert sum(len(e.data) for e in client.events if isinstance(e, Data)) == 300


# -- SETTINGS, PING and empty-frame floods -------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [SettingsFrame(0), PingFrame(0, opaque_data=b"12345678")],
    ids=["SETTINGS", "PING"],
)
def test_acks_the_peer_does_not_read_are_bounded(frame: SettingsFrame | PingFrame) -> None:
    client = RawClient()
    one = frame.serialize()
    for _ in range(5):
        assert failure(client.send(one * 199, drain=False)) is None
    assert failure(client.send(one * 10, drain=False)) == EYC  # 1005 ACKs unread > 1000
    frames = parse_frames(client.take_output())
    # The 1005 ACKs owed are dropped (1: the handshake's): the GOAWAY is not queued behind them
    assert sum("ACK" in f.flags for f in frames) == 1
    assert goaways(frames[-1].serialize())[0].error_code == EYC
    assert failure(client.send(one * 10_000)) is None  # and the codec takes nothing more
    assert client.take_output() == b""


def test_acks_the_peer_reads_are_not_a_flood() -> None:
    client = RawClient()
    ping = PingFrame(0, opaque_data=b"12345678").serialize()
    for _ in range(20):
        assert failure(client.send(ping * 200)) is None
    frames = parse_frames(client.take_output())
    assert sum(isinstance(f, PingFrame) and "ACK" in f.flags for f in frames) == 4000


def test_frames_piling_up_unsent_are_bounded() -> None:
    client = RawClient(H2ServerCodec(H2Limits(max_outbound_frames=50)))
    client.send(client.headers(1))
    client.server.send_response_head(1, 200, [])
    for _ in range(60):
        client.server.send_data(1, b"x")
    assert failure(client.server.receive(PingFrame(0).serialize())) == EYC


@pytest.mark.parametrize(
    ("frames", "flood"),
    [
        ([DataFrame(1, b""), DataFrame(1, b"")], True),
        ([DataFrame(1, b""), DataFrame(1, b"x"), DataFrame(1, b"")], False),
        ([DataFrame(1, b""), DataFrame(1, b"", flags=["END_STREAM"])], False),
        ([DataFrame(1, b"", flags=["PADDED"]), DataFrame(1, b"", flags=["PADDED"])], True),
        ([DataFrame(1, b"", flags=["PADDED"], pad_length=9)] * 2, True),
        ([DataFrame(1, b"y", flags=["PADDED"], pad_length=9)] * 2, False),
    ],
    ids=["two-empty", "interleaved", "end-stream", "padded-empty", "padding-only", "padded-data"],
)
def test_consecutive_empty_frames(frames: list[DataFrame], flood: bool) -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    for frame in frames:
        client.send(frame)
    assert (failure(client.events) == EYC) is flood


def test_padded_frame_split_before_its_pad_length_is_still_counted() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    padding_only = DataFrame(1, b"", flags=["PADDED"], pad_length=4).serialize()
    for _ in range(2):
        client.send(padding_only[:9])  # the frame header alone, then the rest
        client.send(padding_only[9:])
    assert failure(client.events) == EYC


def test_empty_headers_frames_are_an_empty_frame_flood() -> None:
    client = RawClient()
    first = HeadersFrame(1, b"", flags=["END_HEADERS"])  # empty block: a malformed request
    assert failure(client.send(first)) is None
    assert resets(client.take_output()) == [(1, ErrorCode.PROTOCOL_ERROR)]
    assert failure(client.send(HeadersFrame(3, b"", flags=["END_HEADERS"]))) == EYC


def test_priority_flood_is_bounded_per_opened_stream() -> None:
    client = RawClient()
    priority = PriorityFrame(1, depends_on=0, stream_weight=16).serialize()
    assert failure(client.send(priority * 100)) is None
    assert failure(client.send(priority)) == EYC
    other = RawClient()
    other.send(other.headers(1))
    assert failure(other.send(priority * 200)) is None  # 100 x (1 + 1 stream)


def test_window_update_flood_follows_envoys_formula() -> None:
    def allowed(streams: int, data_frames: int) -> int:
        client = RawClient()
        for i in range(streams):
            client.send(client.headers(1 + 2 * i))
        client.server.send_response_head(1, 200, [])
        for _ in range(data_frames):
            client.server.send_data(1, b"x")
        count = 0
        while failure(client.send(WindowUpdateFrame(0, window_increment=1))) is None:
            count += 1
            assert count < 1000
        return count

    assert allowed(0, 0) == 1
    assert allowed(1, 0) == 3
    assert allowed(1, 2) == 43  # 1 + 2 x (1 + 10 x 2)
