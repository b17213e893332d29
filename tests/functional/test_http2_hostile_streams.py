"""Functional: hostile HTTP/2 streams and windows against a real gateway on 127.0.0.1.

Window overflow, stream ids reused or going backwards, oversized frames, DATA on closed
streams, readers that never read (a zero window, or a socket never read), and client prefaces
that are not one. Each attack runs on its own raw connection while a well-behaved client
(``Prober``) keeps being answered, and checks the gateway's answer on the wire (GOAWAY or
RST_STREAM with the code docs/http2-grpc.md gives). Floods are in ``test_http2_hostile.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from gateway_core.proxy.h2_stream import HIGH_WATER
from gateway_core.utils.tasks import spawn
from tests.conftest import free_port
from tests.functional.h2raw import (
    PREFACE,
    Prober,
    RawH2,
    Site,
    peak_growth,
    poll,
    request,
    start_site,
)
from tests.functional.support import config, lab_certs

KiB, MiB = 1 << 10, 1 << 20
MAX_WINDOW = 2**31 - 1
UPSTREAM_READ = 256 * KiB
"""The most one read of an upstream socket returns (asyncio's and uvloop's read size)."""


@pytest.fixture
async def site(gateway: Callable[..., Any], pods: Callable[..., Any]) -> Site:
    return await start_site(gateway, pods)


async def _goaway_for(
    site: Site, frames: Callable[[RawH2], list[bytes | Frame]], *, preface: bool = True
) -> GoAwayFrame:
    """Send ``frames(raw)`` (built with that connection's HPACK encoder) on a fresh
    connection, after the preface and SETTINGS unless told not to, while the prober is
    served; the GOAWAY the gateway answers with."""
    async with Prober(site.port):
        raw = await (RawH2.connect(site.port) if preface else RawH2.open(site.port))
        try:
            await raw.send(*frames(raw))
            goaway = await raw.goaway()
            assert goaway is not None, raw.frames
            await poll(lambda: site.side_of(raw) is None, 10, "the gateway let go")
            return goaway
        finally:
            raw.close()


# -- window overflow -------------------------------------------------------------------------


async def test_connection_window_overflow_gets_goaway_flow_control_error(site: Site) -> None:
    goaway = await _goaway_for(
        site, lambda raw: [WindowUpdateFrame(0, window_increment=MAX_WINDOW)]
    )
    assert goaway.error_code == ErrorCodes.FLOW_CONTROL_ERROR


async def test_stream_window_overflow_resets_that_stream_only(site: Site) -> None:
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            overflow = WindowUpdateFrame(1, window_increment=MAX_WINDOW)
            await raw.send(raw.get(1, "/w1"), overflow, raw.get(3, "/w3"))
            assert await raw.stream_end(3) is not None
            assert raw.rst_codes(1) == [ErrorCodes.FLOW_CONTROL_ERROR]
            assert raw.status(3) == 200
            assert not raw.of_kind(GoAwayFrame)
        finally:
            raw.close()


# -- stream ids ----------------------------------------------------------------------------------


async def test_stream_id_going_backwards_gets_goaway_protocol_error(site: Site) -> None:
    goaway = await _goaway_for(site, lambda raw: [raw.get(5, "/s5"), raw.get(3, "/s3")])
    assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.PROTOCOL_ERROR, 5)


async def test_even_stream_id_from_a_client_gets_goaway_protocol_error(site: Site) -> None:
    goaway = await _goaway_for(site, lambda raw: [raw.get(2, "/even")])
    assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.PROTOCOL_ERROR, 0)


async def test_reused_stream_id_gets_goaway_stream_closed(site: Site) -> None:
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            await raw.send(raw.get(1, "/first"))
            assert await raw.stream_end(1) is not None
            assert raw.status(1) == 200
            await raw.send(raw.get(1, "/again"))
            goaway = await raw.goaway()
            assert goaway is not None
            assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.STREAM_CLOSED, 1)
        finally:
            raw.close()
    assert site.attacked_requests() == 1


# -- oversized frames -------------------------------------------------------------------------


async def test_oversized_frame_is_refused_from_its_header_alone(site: Site) -> None:
    """A DATA frame announcing 16 MiB - 1: GOAWAY FRAME_SIZE_ERROR after its 9-byte header,
    before any payload is sent (so none is ever buffered)."""
    header = (2**24 - 1).to_bytes(3) + DataFrame(1, b"").serialize()[3:9]
    goaway = await _goaway_for(site, lambda raw: [raw.get(1, "/big", end_stream=False), header])
    assert goaway.error_code == ErrorCodes.FRAME_SIZE_ERROR


async def test_headers_frame_over_the_frame_size_gets_goaway(site: Site) -> None:
    fields = request("/big", extra=[(b"x-pad", b"p" * 17_000)])

    def frames(raw: RawH2) -> list[bytes | Frame]:
        block = raw.encoder.encode(fields, huffman=False)
        return [HeadersFrame(1, block, flags=["END_HEADERS", "END_STREAM"])]

    goaway = await _goaway_for(site, frames)
    assert (goaway.error_code, goaway.last_stream_id) == (ErrorCodes.FRAME_SIZE_ERROR, 0)
    assert site.attacked_requests() == 0


# -- DATA on closed streams --------------------------------------------------------------------


async def test_data_after_end_stream_resets_the_stream_and_returns_its_window(
    site: Site, measured: Callable[[str], None]
) -> None:
    """DATA after the client's END_STREAM: RST_STREAM STREAM_CLOSED. 17 MiB more of them, past
    the 16 MiB connection window, and then an upload on another stream: every byte went back
    to the connection window, so nothing stalls and no GOAWAY comes."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            await raw.send(raw.get(1, "/closed"), DataFrame(1, b"x" * 100))
            assert await raw.read_until(lambda f: bool(raw.rst_codes(1))) is not None
            assert raw.rst_codes(1) == [ErrorCodes.STREAM_CLOSED]
            body = bytes(range(256)) * 256  # 64 KiB
            ended = spawn(raw.stream_end(3, within=60), name="read stream 3")
            try:
                chunk = DataFrame(1, b"y" * 16_384).serialize() * 64  # 1 MiB
                sent = await raw.flood(chunk, 17 * MiB)
                assert sent >= 17 * MiB  # all of it: the gateway kept reading
                upload = request("/upload", b"POST", [(b"content-length", b"65536")])
                await raw.send(
                    raw.headers(3, upload, end_stream=False),
                    *(DataFrame(3, body[i : i + 16_384]) for i in range(0, len(body), 16_384)),
                    DataFrame(3, b"", flags=["END_STREAM"]),
                )
                end = await ended
            finally:
                ended.cancel()
            assert end is not None
            assert not isinstance(end, GoAwayFrame), end
            assert raw.status(3) == 200
            assert json.loads(raw.body(3))["received"] == len(body)
            assert not raw.of_kind(GoAwayFrame)
        finally:
            raw.close()
    resets = len(raw.rst_codes(1))
    measured(f"17 MiB of DATA on a reset stream: {resets} RST_STREAM frames back")


async def test_data_on_a_stream_never_opened_gets_goaway_protocol_error(site: Site) -> None:
    goaway = await _goaway_for(site, lambda raw: [DataFrame(7, b"x" * 100)])
    assert goaway.error_code == ErrorCodes.PROTOCOL_ERROR


# -- readers that never read --------------------------------------------------------------------


async def test_zero_window_reader_costs_one_bounded_buffer_and_others_go_on(
    site: Site, measured: Callable[[str], None]
) -> None:
    """SETTINGS_INITIAL_WINDOW_SIZE 0 and a 64 MiB response never read: the gateway holds at
    most HIGH_WATER plus one upstream read for it and stops reading the pod; another stream
    on the same connection and other clients are answered meanwhile; once the window opens
    the response flows again, as far as the window allows."""
    async with Prober(site.port) as probe:
        raw = await RawH2.connect(site.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
        try:
            conn = await poll(lambda: site.side_of(raw), 5, "the gateway took the connection")
            await raw.send(raw.get(1, f"/bytes/{64 * MiB}"))
            stream = await poll(lambda: conn.streams.get(1), 5, "the gateway opened stream 1")
            await poll(lambda: stream.upstream_paused, 10, "the gateway stopped reading the pod")
            held = conn.codec.buffered(1)
            assert 0 < held <= HIGH_WATER + UPSTREAM_READ
            answered = probe.answered
            await raw.send(raw.get(3, "/other"), WindowUpdateFrame(3, window_increment=MiB))
            assert await raw.stream_end(3) is not None
            assert raw.status(3) == 200
            await probe.answers(answered + 10)
            assert conn.codec.buffered(1) == held  # nothing more was read from the pod
            assert stream.upstream_paused
            assert not raw.body(1)
            await raw.send(
                WindowUpdateFrame(0, window_increment=MiB),
                WindowUpdateFrame(1, window_increment=MiB),
            )
            await raw.read_until(lambda f: len(raw.body(1)) >= MiB)
            assert len(raw.body(1)) == MiB
        finally:
            raw.close()
        await poll(lambda: site.side_of(raw) is None, 10, "the gateway let go")
    measured(f"held for the unread stream: {held // KiB} KiB (HIGH_WATER {HIGH_WATER // KiB})")


async def test_socket_never_read_holds_back_streams_opened_later(
    site: Site, measured: Callable[[str], None]
) -> None:
    """Windows of 2^31-1 and a socket never read: once the gateway's socket takes nothing,
    a stream opened after that has its upstream paused too (its response is not buffered
    whole, which it was before the fix: 64 MiB per stream)."""
    async with Prober(site.port):
        raw = await RawH2.connect(
            site.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW}, rcvbuf=4096
        )
        try:
            opened = WindowUpdateFrame(0, window_increment=MAX_WINDOW - 65_535)
            await raw.send(opened, raw.get(1, f"/bytes/{64 * MiB}"))
            conn = await poll(lambda: site.side_of(raw), 5, "the gateway took the connection")
            await poll(lambda: conn.transport_paused, 10, "the gateway's socket backed up")

            async def second_stream() -> None:
                await raw.send(raw.get(3, f"/bytes/{64 * MiB}"))
                stream = await poll(lambda: conn.streams.get(3), 5, "stream 3 opened")
                await poll(lambda: stream.upstream_paused, 10, "stream 3's upstream paused")

            _, peak = await peak_growth(second_stream())
            assert peak < 4 * MiB
        finally:
            raw.close()
    measured(f"second stream on a socket never read: peak +{peak / MiB:.2f} MiB")


# -- prefaces ---------------------------------------------------------------------------------


async def test_broken_h2c_preface_is_closed_without_goaway(site: Site) -> None:
    async with Prober(site.port):
        raw = await RawH2.open(site.port)
        try:
            await raw.send(PREFACE[:16] + b"XX\r\n\r\n", SettingsFrame(0))
            frames = await raw.until_closed()
            # the gateway spoke HTTP/2 (its SETTINGS and connection window), then closed
            assert [type(f) for f in frames] == [SettingsFrame, WindowUpdateFrame]
            await poll(lambda: site.side_of(raw) is None, 10, "the gateway let go")
        finally:
            raw.close()


async def test_first_frame_other_than_settings_gets_goaway_protocol_error(site: Site) -> None:
    goaway = await _goaway_for(site, lambda raw: [PREFACE, PingFrame(0)], preface=False)
    assert goaway.error_code == ErrorCodes.PROTOCOL_ERROR


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab_certs(tmp_path_factory.mktemp("pki"))


async def test_http1_request_after_alpn_h2_is_closed_without_goaway(
    gateway: Callable[..., Any], pods: Callable[..., Any], pki: Path
) -> None:
    """TLS with ALPN h2, then an HTTP/1.1 request instead of the preface: the gateway closes
    the connection without a GOAWAY and without answering over HTTP/1.1."""
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    yaml = config(
        port,
        "  - route: [{destination: {host: echo.local}}]",
        {"echo.local": [pod.port]},
        credential="bookinfo-credential",
    )
    await gateway(yaml, cert_dir=str(pki))
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.set_alpn_protocols(["h2"])
    async with Prober(port, tls=ctx, sni="bookinfo.example.com"):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="bookinfo.example.com"
        )
        try:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
            writer.write(b"GET / HTTP/1.1\r\nHost: bookinfo.example.com\r\n\r\n")
            received = bytearray()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                async with asyncio.timeout(10):
                    while data := await reader.read(65536):
                        received += data
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
    assert b"HTTP/1.1" not in received
    goaway_type = b"\x07"
    assert all(received[i + 3 : i + 4] != goaway_type for i in _frame_offsets(received))


def _frame_offsets(buf: bytes | bytearray) -> list[int]:
    offsets, i = [], 0
    while i + 9 <= len(buf):
        offsets.append(i)
        i += 9 + int.from_bytes(buf[i : i + 3])
    return offsets
