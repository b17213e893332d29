"""Tests for gateway_core/proxy/codec/http2.py: a client codec and a server codec in memory."""

from __future__ import annotations

import pytest
from h2.settings import SettingCodes
from hpack import Encoder
from hyperframe.frame import HeadersFrame, SettingsFrame, WindowUpdateFrame

from gateway_core.proxy.codec.events import (
    Data,
    ErrorCode,
    Fields,
    GoAway,
    RequestHead,
    Reset,
    ResponseHead,
    SettingsChanged,
    Trailers,
    WindowOpened,
)
from gateway_core.proxy.codec.h2_guard import PREFACE, H2Limits
from gateway_core.proxy.codec.http2 import H2ClientCodec, H2ServerCodec, NoStreamAvailable
from tests.gateway_core.proxy.codec.h2_testkit import GET, Pair, RawClient, body, parse_frames

MIB = 1 << 20
GRPC_REQUEST = [(b"content-type", b"application/grpc"), (b"te", b"trailers")]


def test_each_side_opens_with_its_settings_and_a_larger_connection_window() -> None:
    server_hello = parse_frames(H2ServerCodec().data_to_send())
    assert isinstance(server_hello[0], SettingsFrame)
    assert (
        server_hello[0].settings.items()
        >= {
            SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            SettingCodes.INITIAL_WINDOW_SIZE: MIB,
            SettingCodes.MAX_FRAME_SIZE: 16384,
            SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            SettingCodes.HEADER_TABLE_SIZE: 4096,
        }.items()
    )
    assert isinstance(server_hello[1], WindowUpdateFrame)
    assert (server_hello[1].stream_id, server_hello[1].window_increment) == (0, 16 * MIB - 65535)
    client_hello = H2ClientCodec().data_to_send()
    assert client_hello.startswith(PREFACE)
    settings = parse_frames(client_hello)[0]
    assert isinstance(settings, SettingsFrame)
    assert settings.settings[SettingCodes.ENABLE_PUSH] == 0


def test_grpc_unary_call_with_body_and_trailers() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"POST", b"https", b"svc:443", b"/pkg.Greeter/Hi", GRPC_REQUEST)
    message = b"\x00\x00\x00\x00\x05hello"
    pair.client.send_data(sid, message, end_stream=True)
    got, _ = pair.pump()
    assert got[0] == RequestHead(
        sid, b"POST", b"https", b"svc:443", b"/pkg.Greeter/Hi", GRPC_REQUEST, False
    )
    assert body(got, sid) == message
    assert isinstance(got[-1], Data)
    assert got[-1].end_stream

    pair.server.send_response_head(sid, 200, [(b"content-type", b"application/grpc")])
    pair.server.send_data(sid, b"\x00\x00\x00\x00\x02ok")
    pair.server.send_trailers(sid, [(b"grpc-status", b"0"), (b"grpc-message", b"")])
    _, answer = pair.pump()
    assert answer == [
        ResponseHead(sid, 200, [(b"content-type", b"application/grpc")], False),
        Data(sid, b"\x00\x00\x00\x00\x02ok", False),
        Trailers(sid, [(b"grpc-status", b"0"), (b"grpc-message", b"")]),
    ]
    assert pair.client.open_streams == pair.server.open_streams == 0


def test_trailers_only_response_ends_the_stream_with_the_head() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"POST", b"http", b"svc", b"/a.B/C", GRPC_REQUEST, True)
    pair.pump()
    pair.server.send_response_head(sid, 200, [(b"grpc-status", b"14")], end_stream=True)
    _, answer = pair.pump()
    assert answer == [ResponseHead(sid, 200, [(b"grpc-status", b"14")], True)]
    assert pair.server.open_streams == 0


def test_informational_responses_precede_the_final_one() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"GET", b"https", b"h", b"/", [], end_stream=True)
    pair.pump()
    pair.server.send_informational(sid, 103, [(b"link", b"</s.css>; rel=preload")])
    pair.server.send_response_head(sid, 204, [], end_stream=True)
    _, answer = pair.pump()
    assert answer == [
        ResponseHead(sid, 103, [(b"link", b"</s.css>; rel=preload")], False),
        ResponseHead(sid, 204, [], True),
    ]
    with pytest.raises(ValueError, match="informational"):
        pair.server.send_informational(sid, 101, [])


def test_request_fields_reach_the_server_as_http1_would_see_them() -> None:
    pair = Pair()
    headers = [(b"Host", b"x"), (b"Cookie", b"a=1; b=2"), (b"Connection", b"close")]
    sid = pair.client.start_request(b"GET", b"https", b"example.com", b"/p?q=1", headers, True)
    got, _ = pair.pump()
    assert got == [
        RequestHead(
            sid, b"GET", b"https", b"example.com", b"/p?q=1", [(b"cookie", b"a=1; b=2")], True
        )
    ]


def test_client_opens_no_more_streams_than_the_server_allows() -> None:
    pair = Pair(server=H2ServerCodec(H2Limits(max_concurrent_streams=10)))
    assert SettingsChanged(10) in pair.client_events
    assert pair.client.available_streams == 10
    sids = [pair.client.start_request(b"GET", b"http", b"h", b"/", [], True) for _ in range(10)]
    assert not pair.client.can_open_stream()
    with pytest.raises(NoStreamAvailable):
        pair.client.start_request(b"GET", b"http", b"h", b"/", [], True)
    pair.pump()
    pair.server.send_response_head(sids[0], 200, [], end_stream=True)
    pair.pump()
    assert pair.client.available_streams == 1


def test_a_hundred_concurrent_streams_each_get_their_own_answer() -> None:
    pair = Pair()
    assert pair.client.available_streams == 100
    sids = []
    for i in range(100):
        sid = pair.client.start_request(b"POST", b"https", b"h", b"/%d" % i, [])
        pair.client.send_data(sid, b"req-%d" % i, end_stream=True)
        sids.append(sid)
    got, _ = pair.pump()
    heads = [e for e in got if isinstance(e, RequestHead)]
    assert [h.path for h in heads] == [b"/%d" % i for i in range(100)]
    assert pair.server.open_streams == 100
    for sid in reversed(sids):
        pair.server.send_response_head(sid, 200, [])
        pair.server.send_data(sid, body(got, sid).replace(b"req", b"resp"), end_stream=True)
    _, answers = pair.pump()
    for i, sid in enumerate(sids):
        assert body(answers, sid) == b"resp-%d" % i
    assert pair.client.open_streams == pair.server.open_streams == 0
    assert pair.client.available_streams == 100


def test_a_stream_nobody_reads_does_not_block_the_others() -> None:
    slow, fast = 1, 3
    pair = Pair(client_reads=lambda sid: sid != slow)
    for _ in (slow, fast):
        pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.pump()
    for sid in (slow, fast):
        pair.server.send_response_head(sid, 200, [])
        pair.server.send_data(sid, bytes([sid]) * (3 * MIB), end_stream=True)
    _, got = pair.pump()
    assert body(got, fast) == bytes([fast]) * (3 * MIB)
    assert len(body(got, slow)) == MIB  # its stream window, and not a byte more
    assert pair.server.buffered(slow) == 2 * MIB
    assert pair.server.buffered(fast) == 0

    pair.client.consumed(slow, MIB)
    _, more = pair.pump()
    assert WindowOpened(slow) in pair.server_events
    assert len(body(more, slow)) == MIB
    assert pair.server.buffered(slow) == MIB


def test_the_sender_buffers_what_the_window_refuses_and_sends_it_when_consumed() -> None:
    pair = Pair(server_reads=lambda sid: False)
    sid = pair.client.start_request(b"PUT", b"https", b"h", b"/upload", [])
    pair.client.send_data(sid, b"u" * (MIB + 1000))
    pair.client.send_data(sid, b"v" * 1000, end_stream=True)
    got, _ = pair.pump()
    assert len(body(got, sid)) == MIB
    assert pair.client.buffered(sid) == 2000

    pair.server.consumed(sid, MIB)
    got, _ = pair.pump()
    assert body(got, sid) == b"u" * 1000 + b"v" * 1000
    assert isinstance(got[-1], Data)
    assert got[-1].end_stream
    assert WindowOpened(sid) in pair.client_events
    assert pair.client.buffered(sid) == 0


def test_trailers_wait_for_buffered_body_bytes() -> None:
    pair = Pair(client_reads=lambda sid: False)
    sid = pair.client.start_request(b"POST", b"https", b"h", b"/a.B/C", GRPC_REQUEST, True)
    pair.pump()
    pair.server.send_response_head(sid, 200, [])
    pair.server.send_data(sid, b"m" * (MIB + 10))
    pair.server.send_trailers(sid, [(b"grpc-status", b"0")])
    _, got = pair.pump()
    assert not any(isinstance(e, Trailers) for e in got)
    pair.client.consumed(sid, MIB)
    _, got = pair.pump()
    assert got == [Data(sid, b"m" * 10, False), Trailers(sid, [(b"grpc-status", b"0")])]


def test_reset_stream_returns_its_unread_bytes_to_the_connection_window() -> None:
    tight = H2Limits(initial_stream_window=65535, connection_window=65535)
    pair = Pair(
        client=H2ClientCodec(tight),
        server=H2ServerCodec(tight),
        server_reads=lambda sid: sid != 1,
    )
    first = pair.client.start_request(b"POST", b"http", b"h", b"/", [])
    pair.client.send_data(first, b"a" * 60000)
    pair.pump()
    pair.server.reset(first, ErrorCode.CANCEL)
    sent = parse_frames(pair.server.data_to_send())
    assert [(f.type, f.stream_id) for f in sent] == [(0x3, first), (0x8, 0)]  # RST, WINDOW_UPDATE
    assert isinstance(sent[1], WindowUpdateFrame)
    assert sent[1].window_increment == 60000
    answer = pair.client.receive(b"".join(f.serialize() for f in sent))
    assert answer == [Reset(first, ErrorCode.CANCEL, True)]
    second = pair.client.start_request(b"POST", b"http", b"h", b"/", [])
    pair.client.send_data(second, b"b" * 200_000, end_stream=True)
    got, _ = pair.pump()
    assert body(got, second) == b"b" * 200_000


def test_client_reset_reaches_the_server_and_later_sends_are_dropped() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.pump()
    pair.client.reset(sid, ErrorCode.CANCEL)
    got, _ = pair.pump()
    assert got == [Reset(sid, ErrorCode.CANCEL, True)]
    pair.server.send_response_head(sid, 200, [])
    pair.server.send_data(sid, b"late", end_stream=True)
    assert pair.server.data_to_send() == b""


def test_graceful_goaway_lets_open_streams_finish_and_refuses_new_ones() -> None:
    pair = Pair()
    before = [pair.client.start_request(b"GET", b"https", b"h", b"/", [], True) for _ in range(2)]
    pair.pump()
    pair.server.goaway(last_stream_id=2**31 - 1)  # step one: "stop opening streams"
    in_flight = pair.client.start_request(b"GET", b"https", b"h", b"/late", [], True)
    got, answer = pair.pump()
    assert answer == [GoAway(2**31 - 1, 0, True)]
    assert [e.stream_id for e in got if isinstance(e, RequestHead)] == [in_flight]
    assert not pair.client.can_open_stream()

    pair.server.goaway()  # step two: the real last stream
    _, answer = pair.pump()
    assert answer == [GoAway(in_flight, 0, True)]
    for sid in [*before, in_flight]:
        pair.server.send_response_head(sid, 200, [])
        pair.server.send_data(sid, b"done", end_stream=True)
    _, answer = pair.pump()
    for sid in [*before, in_flight]:
        assert body(answer, sid) == b"done"
    assert pair.client.open_streams == pair.server.open_streams == 0

    # a client that ignores the GOAWAY gets its new stream refused, unseen by the owner
    raw = RawClient(H2ServerCodec())
    raw.send(raw.headers(1, end_stream=True))
    raw.server.goaway()
    assert raw.send(raw.headers(3)) == []
    assert (3, ErrorCode.REFUSED_STREAM) in [
        (f.stream_id, f.error_code) for f in parse_frames(raw.take_output()) if f.type == 0x3
    ]


def test_client_gets_refused_resets_for_streams_above_the_servers_goaway() -> None:
    pair = Pair()
    kept = pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.pump()
    refused = pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.server.goaway(last_stream_id=kept)
    _, answer = pair.pump()
    assert answer[:2] == [GoAway(kept, 0, True), Reset(refused, ErrorCode.REFUSED_STREAM, True)]
    assert pair.client.goaway_received == kept
    pair.server.send_response_head(kept, 200, [])
    pair.server.send_data(kept, b"body after goaway", end_stream=True)
    _, answer = pair.pump()
    assert body(answer, kept) == b"body after goaway"
    assert pair.server.open_streams == 0


@pytest.mark.parametrize(
    "blocks",
    [
        [[(b":status", b"2OO")]],
        [[(b":status", b"200"), (b"connection", b"close")]],
        [[(b":status", b"200")], [(b":status", b"200")]],  # pseudo-header field in trailers
        [[(b":status", b"200")], [(b"Grpc-Status", b"0")]],
    ],
    ids=["bad-status", "connection-field", "pseudo-in-trailers", "uppercase"],
)
def test_malformed_response_or_trailers_reset_the_stream(blocks: list[Fields]) -> None:
    client = H2ClientCodec()
    sid = client.start_request(b"GET", b"https", b"h", b"/", [], end_stream=True)
    client.data_to_send()
    encoder = Encoder()
    wire = SettingsFrame(0).serialize()
    for i, fields in enumerate(blocks):
        flags = ["END_HEADERS"] + (["END_STREAM"] if i == len(blocks) - 1 and i else [])
        wire += HeadersFrame(sid, encoder.encode(fields), flags=flags).serialize()
    events = client.receive(wire)
    assert Reset(sid, ErrorCode.PROTOCOL_ERROR, False) in events
    assert not any(isinstance(e, Trailers) for e in events)
    assert client.open_streams == 0
    if len(blocks) == 1:  # the stream was still open: the server hears of it
        sent = parse_frames(client.data_to_send())
        assert (sent[-1].type, sent[-1].stream_id) == (0x3, sid)


def test_bytes_split_anywhere_give_the_same_events() -> None:
    sender = H2ClientCodec()
    sid = sender.start_request(b"POST", b"https", b"h", b"/x", [(b"a", b"b")])
    sender.send_data(sid, b"payload" * 100, end_stream=True)
    sender.goaway()
    wire = sender.data_to_send() + SettingsFrame(0, flags=["ACK"]).serialize()
    whole = H2ServerCodec().receive(wire)
    split = H2ServerCodec()
    pieces = [split.receive(wire[i : i + 1]) for i in range(len(wire))]
    assert [e for events in pieces for e in events if not isinstance(e, Data)] == [
        e for e in whole if not isinstance(e, Data)
    ]
    assert body([e for events in pieces for e in events], sid) == body(whole, sid)
    assert GoAway(0, 0, True) in whole


def test_body_or_trailers_before_the_response_head_is_a_caller_bug() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.pump()
    with pytest.raises(ValueError, match="before the head"):
        pair.server.send_data(sid, b"x")
    with pytest.raises(ValueError, match="before the head"):
        pair.server.send_trailers(sid, [(b"grpc-status", b"0")])
    assert pair.server.data_to_send() == b""


def test_close_forgets_everything() -> None:
    pair = Pair()
    sid = pair.client.start_request(b"GET", b"https", b"h", b"/", [], True)
    pair.pump()
    pair.server.close()
    assert pair.server.failed
    assert pair.server.open_streams == 0
    assert pair.server.receive(GET[0][0]) == []
    pair.server.send_response_head(sid, 200, [])
    assert pair.server.data_to_send() == b""
