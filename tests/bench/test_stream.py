"""Benchmark: the streaming source/sink, body framing, and RSS sampling around a transfer."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator
from functools import partial

import pytest

from bench.stream import (
    CHUNK,
    PATTERN,
    Backend,
    download,
    measure_transfer,
    parse_head,
    pattern_crc,
    read_body,
    upload,
)


@pytest.fixture
async def backend_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(Backend(stall=0.05).handle, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


def test_pattern_crc_matches_a_direct_crc() -> None:
    """The expected CRC of n pattern bytes equals the CRC of those bytes, across chunk edges."""
    size = CHUNK * 2 + 1000
    data = (PATTERN * 3)[:size]
    assert pattern_crc(size) == zlib.crc32(data)
    assert pattern_crc(0) == 0


def test_parse_head_lowercases_fields() -> None:
    """The start line splits in three and header names are case-folded."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n"
    assert parse_head(head) == ("HTTP/1.1", "200", {"content-length": "5", "x-a": "b"})


@pytest.mark.parametrize("chunked", [False, True])
async def test_download_through_backend_is_intact(backend_port: int, chunked: bool) -> None:
    """A 1 MB download arrives complete with the right CRC, in either framing."""
    assert await download(backend_port, 1_000_003, chunked=chunked, stall=0.01)


@pytest.mark.parametrize("chunked", [False, True])
async def test_upload_to_backend_is_counted(backend_port: int, chunked: bool) -> None:
    """The sink reports the exact byte count and CRC of an upload, in either framing."""
    assert await upload(backend_port, 3 * CHUNK + 7, chunked=chunked)


async def test_unknown_target_is_404(backend_port: int) -> None:
    """Anything but /bytes/<n> and /upload answers 404."""
    reader, writer = await asyncio.open_connection("127.0.0.1", backend_port)
    writer.write(b"GET /nope HTTP/1.1\r\nhost: x\r\n\r\n")
    status = parse_head(await reader.readuntil(b"\r\n\r\n"))[1]
    writer.close()
    await writer.wait_closed()
    assert status == "404"


async def test_read_body_until_close_and_chunk_trailers() -> None:
    """Unframed bodies run to EOF; chunked bodies skip trailers."""
    got = bytearray()
    reader = asyncio.StreamReader()
    reader.feed_data(b"abc")
    reader.feed_eof()
    await read_body(reader, {}, got.extend)
    assert got == b"abc"
    got.clear()
    reader = asyncio.StreamReader()
    reader.feed_data(b"3;ext=1\r\nxyz\r\n0\r\ntrailer: v\r\n\r\n")
    await read_body(reader, {"transfer-encoding": "chunked"}, got.extend)
    assert got == b"xyz"


async def test_truncated_body_is_an_error() -> None:
    """A Content-Length body that ends early raises instead of passing silently."""
    reader = asyncio.StreamReader()
    reader.feed_data(b"ab")
    reader.feed_eof()
    with pytest.raises(ConnectionError, match="3 bytes early"):
        await read_body(reader, {"content-length": "5"}, lambda _d: None)


async def test_measure_transfer_records_peak_and_outcome(backend_port: int) -> None:
    """RSS before/peak come from the watched process; a failed transfer is recorded as such."""
    pid = os.getpid()
    ok = await measure_transfer(
        pid,
        ("download", "chunked"),
        65536,
        partial(download, backend_port, 65536, chunked=True, stall=0.0),
    )
    assert ok.intact
    assert ok.error == ""
    assert ok.rss_peak >= ok.rss_before > 0
    assert ok.growth == ok.rss_peak - ok.rss_before

    async def refused() -> bool:
        await asyncio.open_connection("127.0.0.1", 9)
        return True

    failed = await measure_transfer(pid, ("upload", "content-length"), 1, refused)
    assert not failed.intact
    assert failed.error.startswith("ConnectionRefusedError")
