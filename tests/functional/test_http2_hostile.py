"""Functional: hostile HTTP/2 floods against a real gateway on 127.0.0.1 (h2c).

Rapid reset, CONTINUATION flood, HPACK bombs, SETTINGS/PING floods (from a peer that reads its
ACKs and from one that never does) and empty-frame floods. Each attack runs on its own raw
connection while a well-behaved client (``Prober``) keeps being answered; each checks the
gateway's answer on the wire (GOAWAY or RST_STREAM with the code docs/http2-grpc.md gives),
that the gateway let go of the connection, and, with tracemalloc, that the process's memory
grew by a bounded amount while megabytes of attack went in. Stream-level cases are in
``test_http2_hostile_streams.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.functional.h2raw import Prober, RawH2, Site, peak_growth, poll, request, start_site

MiB = 1 << 20
EYC = ErrorCodes.ENHANCE_YOUR_CALM


@pytest.fixture
async def site(gateway: Callable[..., Any], pods: Callable[..., Any]) -> Site:
    return await start_site(gateway, pods)


async def _let_go(site: Site, raw: RawH2) -> None:
    """The gateway closed its end of ``raw``'s connection (bounded wait)."""
    await poll(lambda: site.side_of(raw) is None, 10, "the gateway still holds the connection")


# -- rapid reset (CVE-2023-44487) --------------------------------------------------------------


async def test_rapid_reset_flood_gets_goaway_and_never_reaches_upstream(
    site: Site, measured: Callable[[str], None]
) -> None:
    """10 000 HEADERS+RST_STREAM pairs written at once: GOAWAY ENHANCE_YOUR_CALM once 250
    premature resets are counted; streams opened and reset within one read never reach the
    router, so the attacked pod sees (almost) none of them."""
    async with Prober(site.port) as probe:
        raw = await RawH2.connect(site.port)
        try:
            pairs = b"".join(
                raw.get(sid, "/rr").serialize() + RstStreamFrame(sid, error_code=8).serialize()
                for sid in range(1, 20_000, 2)
            )

            async def attack() -> GoAwayFrame | None:
                await raw.send(pairs)
                return await raw.goaway()

            goaway, peak = await peak_growth(attack())
            assert goaway is not None
            assert goaway.error_code == EYC
            # h2 parses 16 KiB at a time: it stopped within the first ~630 streams of 10 000
            assert 499 <= goaway.last_stream_id < 2 * 700
            await _let_go(site, raw)
        finally:
            raw.close()
    assert site.attacked_requests() <= 5
    assert peak < 4 * MiB
    measured(
        f"GOAWAY last_stream_id {goaway.last_stream_id}; attacked pod saw "
        f"{site.attacked_requests()}; peak +{peak / MiB:.2f} MiB; "
        f"prober {probe.answered} answers, worst {probe.worst * 1000:.0f} ms"
    )


async def test_rapid_reset_across_reads_trips_at_250_premature_resets(site: Site) -> None:
    """Each stream is seen by the gateway (its request is on its way to the pod, which
    delays its answer) before the client resets it: the 250th premature reset (half of
    Envoy's 500 streams) ends the connection with GOAWAY ENHANCE_YOUR_CALM, last stream 499."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            conn = await poll(lambda: site.side_of(raw), 5, "the gateway took the connection")

            def now_open(sid: int, wanted: bool) -> bool:
                """Stream ``sid`` is (or is no longer) open at the gateway, or it closed."""
                return conn.closed or (sid in conn.streams) is wanted

            opened = 0
            for sid in range(1, 2 * 300, 2):  # bounded: 300 streams at most
                if not await raw.send(raw.get(sid, "/delay/10")):
                    break
                await poll(partial(now_open, sid, True), 5, f"stream {sid} seen")
                if sid not in conn.streams:  # the connection is gone
                    break
                opened += 1
                if not await raw.send(RstStreamFrame(sid, error_code=8)):
                    break
                await poll(partial(now_open, sid, False), 5, f"stream {sid} reset")
            goaway = await raw.goaway()
            assert goaway is not None
            assert (goaway.error_code, goaway.last_stream_id) == (EYC, 499)
            assert opened == 250
        finally:
            raw.close()
    assert site.attacked_requests() <= 250


# -- CONTINUATION flood ------------------------------------------------------------------------


async def test_continuation_flood_gets_goaway_with_bounded_memory(
    site: Site, measured: Callable[[str], None]
) -> None:
    """A header block that never ends: 32 MiB of CONTINUATION frames. GOAWAY
    ENHANCE_YOUR_CALM as soon as the block passes 64 KiB; the gateway never buffers it."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            start = raw.headers(1, request("/cont"), end_headers=False)
            chunk = ContinuationFrame(1, b"\x00" * 16384).serialize() * 8

            async def attack() -> tuple[int, GoAwayFrame | None]:
                await raw.send(start)
                sent = await raw.flood(chunk, 32 * MiB)
                return sent, await raw.goaway()

            (sent, goaway), peak = await peak_growth(attack())
            assert goaway is not None
            assert goaway.error_code == EYC
            await _let_go(site, raw)
        finally:
            raw.close()
    assert site.attacked_requests() == 0
    assert peak < 4 * MiB
    measured(f"client wrote {sent / MiB:.1f} MiB before the reset; peak +{peak / MiB:.2f} MiB")


# -- HPACK bombs -------------------------------------------------------------------------------


async def test_dynamic_table_above_the_advertised_size_is_a_compression_error(
    site: Site,
) -> None:
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            raw.encoder.header_table_size = 1 << 30  # a size update the gateway never allowed
            await raw.send(raw.get(1, "/hpack"))
            goaway = await raw.goaway()
            assert goaway is not None
            assert goaway.error_code == ErrorCodes.COMPRESSION_ERROR
            await _let_go(site, raw)
        finally:
            raw.close()


async def test_header_list_bomb_gets_goaway_with_bounded_memory(
    site: Site, measured: Callable[[str], None]
) -> None:
    """A 4 KB field in the dynamic table, then a block of 13 000 one-byte references to it
    (one 16 KB frame): 52 MB once decoded. GOAWAY ENHANCE_YOUR_CALM; decoding stops near
    the 64 KiB limit."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            big = [(b"x-big", b"a" * 4000)]
            await raw.send(raw.headers(1, request("/hpack", extra=big)))
            end = await raw.stream_end(1)
            assert end is not None
            assert raw.status(1) == 200  # 4 KB is fine
            bomb = raw.headers(3, request("/hpack", extra=big * 13_000))
            assert len(bomb.data) < 16_384

            async def attack() -> GoAwayFrame | None:
                await raw.send(bomb)
                return await raw.goaway()

            goaway, peak = await peak_growth(attack())
            assert goaway is not None
            assert (goaway.error_code, goaway.last_stream_id) == (EYC, 1)
            await _let_go(site, raw)
        finally:
            raw.close()
    assert site.attacked_requests() == 1
    assert peak < 2 * MiB
    measured(f"52 MB header list: peak +{peak / MiB:.2f} MiB")


async def test_too_many_header_fields_reset_that_stream_only(site: Site) -> None:
    """120 fields (the limit is 100): RST_STREAM PROTOCOL_ERROR; the connection goes on."""
    raw = await RawH2.connect(site.port)
    try:
        many = [(b"x-f%d" % i, b"v") for i in range(120)]
        await raw.send(raw.headers(1, request("/many", extra=many)), raw.get(3, "/after"))
        end = await raw.stream_end(3)
        assert end is not None
        assert raw.rst_codes(1) == [ErrorCodes.PROTOCOL_ERROR]
        assert raw.status(3) == 200
        assert not any(isinstance(f, GoAwayFrame) for f in raw.frames)
    finally:
        raw.close()
    assert site.attacked_requests() == 1


# -- SETTINGS and PING floods ----------------------------------------------------------------

PING = PingFrame(0, opaque_data=b"hostile!").serialize()
FLOODS = {"SETTINGS": SettingsFrame(0).serialize(), "PING": PING}


async def test_ping_flood_from_a_peer_that_never_reads_is_cut_off(
    site: Site, measured: Callable[[str], None]
) -> None:
    """PINGs in bursts of 900, each read by the gateway before the next (over 1 000 in one
    read are a flood by themselves, see below), from a client that never reads. The gateway
    writes ACKs until its socket takes no more; then they pile up in the codec until 1 000
    (Envoy's outbound control frame limit) and the gateway resets the connection rather than
    buffer more. A GOAWAY could not reach such a peer: the connection is reset."""
    async with Prober(site.port) as probe:
        raw = await RawH2.connect(site.port, rcvbuf=4096)
        try:
            conn = await poll(lambda: site.side_of(raw), 5, "the gateway took the connection")
            burst = PING * 900
            total = 64 * MiB

            async def flood(until_paused: bool) -> int:
                sent = 0
                async with asyncio.timeout(60):
                    while sent < total and await raw.send(burst):
                        sent += len(burst)
                        await poll(lambda: raw.all_read_by(conn), 10, "the gateway read")
                        if until_paused and conn.transport_paused:
                            break
                return sent

            filled = await flood(until_paused=True)  # kernel buffers take MBs of ACKs first
            assert conn.transport_paused, "the gateway's socket never backed up"
            sent, peak = await peak_growth(flood(until_paused=False))
            assert sent < total, "the gateway never cut the flood off"
            await _let_go(site, raw)
            frames = await raw.until_closed()
        finally:
            raw.close()
    pings = (filled + sent) // len(PING)
    acks = sum(1 for f in frames if isinstance(f, PingFrame))
    assert acks < pings  # it stopped answering
    assert not any(isinstance(f, GoAwayFrame) for f in frames)
    assert peak < 2 * MiB
    measured(
        f"{pings} PINGs ({(filled + sent) / MiB:.1f} MiB) before the reset, {acks} ACKs "
        f"read after it; after the socket backed up: {sent // len(PING)} PINGs, peak "
        f"+{peak / MiB:.2f} MiB; prober {probe.answered} answers, worst "
        f"{probe.worst * 1000:.0f} ms"
    )


@pytest.mark.parametrize("kind", list(FLOODS))
async def test_ack_flood_burst_in_one_read_gets_goaway(site: Site, kind: str) -> None:
    """10 000 of them in one write: more than 1 000 ACKs owed after one read of the socket
    is a flood even from a peer that reads (nghttp2's max_outbound_ack, Envoy's default):
    GOAWAY ENHANCE_YOUR_CALM."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            assert await raw.send(FLOODS[kind] * 10_000)
            goaway = await raw.goaway()
            assert goaway is not None
            assert goaway.error_code == EYC
            await _let_go(site, raw)
        finally:
            raw.close()


@pytest.mark.parametrize("kind", list(FLOODS))
async def test_ack_flood_from_a_peer_that_reads_is_answered(site: Site, kind: str) -> None:
    """4 000 of them in bursts of 200, each burst's ACKs read before the next: all are
    answered and the connection stays up (Envoy does the same)."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            frame = FLOODS[kind]

            def acks() -> int:
                return sum(1 for f in raw.frames if "ACK" in f.flags and f.type == frame[3])

            def acked(wanted: int, _: Frame) -> bool:
                return acks() >= wanted

            # the gateway's ACK of the SETTINGS sent on connecting comes first
            await raw.read_until(lambda f: isinstance(f, SettingsFrame) and "ACK" in f.flags)
            base = acks()
            for burst in range(1, 21):
                assert await raw.send(frame * 200)
                await raw.read_until(partial(acked, base + 200 * burst))
                assert not raw.eof
            assert acks() == base + 4000
            assert not any(isinstance(f, GoAwayFrame) for f in raw.frames)
        finally:
            raw.close()


# -- empty frames --------------------------------------------------------------------------------


async def test_empty_data_frame_flood_gets_goaway(
    site: Site, measured: Callable[[str], None]
) -> None:
    """16 MiB of empty DATA frames on an open stream: GOAWAY ENHANCE_YOUR_CALM at the
    second (Envoy's max_consecutive_inbound_frames_with_empty_payload is 1)."""
    async with Prober(site.port):
        raw = await RawH2.connect(site.port)
        try:
            await raw.send(raw.headers(1, request("/upload", b"POST"), end_stream=False))
            conn = await poll(lambda: site.side_of(raw), 5, "the gateway took the connection")
            await poll(lambda: 1 in conn.streams, 5, "the gateway opened stream 1")
            chunk = DataFrame(1, b"").serialize() * 8192

            async def attack() -> tuple[int, GoAwayFrame | None]:
                sent = await raw.flood(chunk, 16 * MiB)
                return sent, await raw.goaway()

            (sent, goaway), peak = await peak_growth(attack())
            assert goaway is not None
            assert (goaway.error_code, goaway.last_stream_id) == (EYC, 1)
            await _let_go(site, raw)
        finally:
            raw.close()
    assert peak < 4 * MiB
    measured(f"client wrote {sent / MiB:.1f} MiB; peak +{peak / MiB:.2f} MiB")
