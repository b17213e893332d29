"""Tests for gateway_core/proxy/codec/http2.py: protocol violations and a zero-window reader.

Window overflow, stream ids reused or going backwards, oversized frames, DATA on closed
streams, bad prefaces, and a peer that never opens its window: the codec's answer on the
wire and what it keeps buffered.
"""

from __future__ import annotations

import pytest
from h2.settings import SettingCodes
from hyperframe.frame import (
    DataFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from gateway_core.proxy.codec.events import (
    ErrorCode,
    RequestHead,
    Reset,
    WindowOpened,
)
from gateway_core.proxy.codec.h2_guard import PREFACE, H2Limits
from gateway_core.proxy.codec.http2 import H2ServerCodec
from tests.gateway_core.proxy.codec.h2_testkit import (
    GET,
    RawClient,
    data_bytes,
    failure,
    goaway_code,
    goaways,
    parse_frames,
    peak_bytes,
    resets,
)

# -- flow control, stream ids, frame sizes, closed streams --------------------------------------


def test_connection_window_overflow_is_a_flow_control_error() -> None:
    client = RawClient()
    assert failure(client.send(WindowUpdateFrame(0, window_increment=2**31 - 1))) == 3
    assert goaway_code(client) == ErrorCode.FLOW_CONTROL_ERROR


def test_stream_window_overflow_resets_the_stream() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    events = client.send(WindowUpdateFrame(1, window_increment=2**31 - 1))
    assert events == [Reset(1, ErrorCode.FLOW_CONTROL_ERROR, False)]
    assert resets(client.take_output()) == [(1, ErrorCode.FLOW_CONTROL_ERROR)]


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [(5, 3, ErrorCode.PROTOCOL_ERROR), (1, 1, ErrorCode.STREAM_CLOSED), (None, 2, 1)],
    ids=["backwards", "reused", "even"],
)
def test_stream_ids_must_grow(first: int | None, second: int, code: int) -> None:
    client = RawClient()
    if first is not None:
        client.send(client.headers(first))
        client.server.send_response_head(first, 200, [], end_stream=True)
    assert failure(client.send(client.headers(second))) == code
    assert goaway_code(client) == code


def test_more_streams_than_advertised_end_the_connection() -> None:
    client = RawClient()
    for sid in range(1, 200, 2):
        client.send(client.headers(sid, end_stream=False))
    assert failure(client.events) is None
    assert client.server.open_streams == 100
    assert failure(client.send(client.headers(201, end_stream=False))) == 1
    assert [(f.error_code, f.last_stream_id) for f in goaways(client.take_output())] == [(1, 199)]


def test_body_longer_or_shorter_than_its_content_length_ends_the_connection() -> None:
    client = RawClient()
    client.send(client.headers(1, [*GET, (b"content-length", b"5")], end_stream=False))
    assert failure(client.send(client.data(1, b"abc", end_stream=True))) == 1
    assert goaway_code(client) == ErrorCode.PROTOCOL_ERROR


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    client = RawClient()
    client.send(client.headers(1, end_stream=False))
    header = DataFrame(1, b"z" * 16385).serialize()[:9]
    assert failure(client.send(header)) == ErrorCode.FRAME_SIZE_ERROR
    assert goaway_code(client) == ErrorCode.FRAME_SIZE_ERROR
    huge = RawClient()
    huge.send(huge.headers(1, end_stream=False))
    lie = b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"z" * 100_000  # 16 MiB announced
    assert peak_bytes(lambda: huge.send(lie)) < 64 * 1024
    assert failure(huge.events) == ErrorCode.FRAME_SIZE_ERROR


def test_data_on_closed_streams() -> None:
    client = RawClient()
    client.send(client.headers(1))  # half-closed (remote): END_STREAM came with the head
    client.send(DataFrame(1, b"more"))
    assert resets(client.take_output()) == [(1, ErrorCode.STREAM_CLOSED)]
    client.send(client.headers(3, end_stream=False))
    client.server.reset(3, ErrorCode.CANCEL)
    client.send(DataFrame(3, b"late"))
    assert resets(client.take_output()) == [(3, ErrorCode.CANCEL), (3, ErrorCode.STREAM_CLOSED)]
    assert [type(e) for e in client.send(client.headers(5))] == [RequestHead]
    assert failure(client.send(DataFrame(9, b"idle"))) == ErrorCode.PROTOCOL_ERROR


# -- connection preface -----------------------------------------------------------------------


def test_http1_request_instead_of_a_preface_is_dropped_without_goaway() -> None:
    server = H2ServerCodec()
    server.data_to_send()
    events = server.receive(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert failure(events) == ErrorCode.PROTOCOL_ERROR
    assert server.data_to_send() == b""
    assert server.receive(PREFACE) == []


def test_preface_must_be_followed_by_settings() -> None:
    server = H2ServerCodec()
    events = server.receive(PREFACE + PingFrame(0).serialize())
    assert failure(events) == ErrorCode.PROTOCOL_ERROR
    assert goaways(server.data_to_send())[0].error_code == ErrorCode.PROTOCOL_ERROR


def test_preface_may_arrive_a_byte_at_a_time() -> None:
    server = H2ServerCodec()
    hello = PREFACE + SettingsFrame(0).serialize()
    events = [e for i in range(len(hello)) for e in server.receive(hello[i : i + 1])]
    assert events == []
    assert not server.failed


# -- the zero-window reader ---------------------------------------------------------------------


def test_zero_window_reader_costs_only_what_buffered_reports() -> None:
    client = RawClient(settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.send(client.headers(1))
    server = client.server
    server.send_response_head(1, 200, [])
    for _ in range(4):
        server.send_data(1, b"q" * 65536)
    assert data_bytes(client.take_output()) == 0
    assert server.buffered(1) == 4 * 65536

    events = client.send(WindowUpdateFrame(1, window_increment=1000))
    assert events == [WindowOpened(1)]
    assert data_bytes(client.take_output(), 1) == 1000
    assert server.buffered(1) == 4 * 65536 - 1000

    # the stream window is now huge, the connection window (65535 by default) is not
    client.send(WindowUpdateFrame(1, window_increment=1 << 30))
    assert data_bytes(client.take_output(), 1) == 65535 - 1000
    assert server.buffered(1) == 4 * 65536 - 65535


def test_data_released_by_a_window_update_counts_once_against_the_outbound_limit() -> None:
    limits = H2Limits(max_outbound_frames=5)
    client = RawClient(H2ServerCodec(limits), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.send(client.headers(1))
    client.server.send_response_head(1, 200, [])
    client.server.send_data(1, b"d" * 3 * 16384)
    events = client.send(WindowUpdateFrame(1, window_increment=3 * 16384), drain=False)
    assert events == [WindowOpened(1)]  # HEADERS + 3 DATA frames waiting: 4 <= 5
    assert data_bytes(client.take_output(), 1) == 3 * 16384


def test_blocked_streams_share_a_reopened_connection_window_in_turn() -> None:
    client = RawClient(settings={SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    server = client.server
    for sid in (1, 3):
        client.send(client.headers(sid))
        server.send_response_head(sid, 200, [])
        server.send_data(sid, bytes([sid]) * 100_000)
    first = parse_frames(client.take_output())
    assert sum(len(f.data) for f in first if isinstance(f, DataFrame)) == 65535
    served = []
    for _ in range(4):
        client.send(WindowUpdateFrame(0, window_increment=16384))
        frames = parse_frames(client.take_output())
        served.append([(f.stream_id, len(f.data)) for f in frames if isinstance(f, DataFrame)])
    assert served == [[(1, 16384)], [(3, 16384)], [(1, 16384)], [(3, 16384)]]
