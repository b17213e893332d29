"""Data path (benchmark): RSS growth of a gateway while 100 MB bodies stream through it.

A raw asyncio backend serves ``GET /bytes/<n>[?chunked=1]`` (a deterministic byte pattern,
Content-Length or chunked) and ``POST /upload`` (counts and CRCs the body). Each transfer
starts with a *stall*: the side that receives (client for downloads, backend for uploads) waits
before reading, so a proxy without back-pressure would buffer the whole body and its RSS would
show it. RSS is sampled from ``/proc`` during the transfer; growth = peak - RSS just before.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from bench.procs import rss_bytes
from gateway_core.utils.tasks import spawn

CHUNK = 64 * 1024
PATTERN = bytes(range(256)) * (CHUNK // 256)
SAMPLE_INTERVAL = 0.01
TRANSFER_TIMEOUT = 120.0

Sink = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Transfer:
    direction: str
    framing: str
    size: int
    seconds: float
    rss_before: int
    rss_peak: int
    intact: bool
    error: str = ""

    @property
    def growth(self) -> int:
        return max(0, self.rss_peak - self.rss_before)


def pattern_crc(size: int) -> int:
    crc, left = 0, size
    while left > 0:
        piece = PATTERN[: min(CHUNK, left)]
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    return crc


def parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    """Request or status line split in three, and lower-cased header fields."""
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return first[0], first[1] if len(first) > 1 else "", headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str], sink: Sink) -> None:
    """Feed a Content-Length or chunked body to ``sink`` piece by piece."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        await _read_chunks(reader, sink)
    elif "content-length" in headers:
        await _read_exactly(reader, int(headers["content-length"]), sink)
    else:
        # A response without framing runs until the connection closes (RFC 9112 §6.3).
        while data := await reader.read(CHUNK):
            sink(data)


async def _read_chunks(reader: asyncio.StreamReader, sink: Sink) -> None:
    while size := int((await reader.readline()).split(b";", 1)[0].strip(), 16):
        await _read_exactly(reader, size, sink)
        await reader.readexactly(2)
    while (await reader.readline()) not in (b"\r\n", b""):
        pass


async def _read_exactly(reader: asyncio.StreamReader, size: int, sink: Sink) -> None:
    while size > 0:
        data = await reader.read(min(CHUNK, size))
        if not data:
            raise ConnectionError(f"body ended {size} bytes early")
        sink(data)
        size -= len(data)


async def write_body(writer: asyncio.StreamWriter, size: int, *, chunked: bool) -> None:
    left = size
    while left > 0:
        piece = PATTERN[: min(CHUNK, left)]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        left -= len(piece)
        await writer.drain()
    if chunked:
        writer.write(b"0\r\n\r\n")
        await writer.drain()


class Backend:
    """The source/sink "pod"; one request per connection keeps it minimal."""

    def __init__(self, stall: float) -> None:
        self.stall = stall

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
            if method == "GET" and target.startswith("/bytes/"):
                path, _, query = target.partition("?")
                await self._source(writer, int(path[len("/bytes/") :]), "chunked=1" in query)
            elif method == "POST" and target == "/upload":
                await self._sink(reader, writer, headers)
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _source(self, writer: asyncio.StreamWriter, size: int, chunked: bool) -> None:
        framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % size
        writer.write(b"HTTP/1.1 200 OK\r\n%s\r\nconnection: close\r\n\r\n" % framing)
        await write_body(writer, size, chunked=chunked)

    async def _sink(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, headers: dict[str, str]
    ) -> None:
        await asyncio.sleep(self.stall)
        state = [0, 0]

        def count(data: bytes) -> None:
            state[0] += len(data)
            state[1] = zlib.crc32(data, state[1])

        await read_body(reader, headers, count)
        body = json.dumps({"received": state[0], "crc32": state[1]}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))


async def _sample_peak(pid: int, stop: asyncio.Event) -> int:
    peak = rss_bytes(pid)
    while not stop.is_set():
        peak = max(peak, rss_bytes(pid))
        await asyncio.sleep(SAMPLE_INTERVAL)
    return max(peak, rss_bytes(pid))


async def download(port: int, size: int, *, chunked: bool, stall: float) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        query = "?chunked=1" if chunked else ""
        writer.write(
            f"GET /bytes/{size}{query} HTTP/1.1\r\nhost: stream.bench\r\n\r\n".encode("latin-1")
        )
        _, status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        await asyncio.sleep(stall)
        state = [0, 0]

        def count(data: bytes) -> None:
            state[0] += len(data)
            state[1] = zlib.crc32(data, state[1])

        await read_body(reader, headers, count)
        return status == "200" and state == [size, pattern_crc(size)]
    finally:
        writer.close()


async def upload(port: int, size: int, *, chunked: bool) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        framing = "transfer-encoding: chunked" if chunked else f"content-length: {size}"
        writer.write(
            f"POST /upload HTTP/1.1\r\nhost: stream.bench\r\n{framing}\r\n\r\n".encode("latin-1")
        )
        await write_body(writer, size, chunked=chunked)
        _, status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        body = bytearray()
        await read_body(reader, headers, body.extend)
        answer = json.loads(body)
        return status == "200" and answer == {"received": size, "crc32": pattern_crc(size)}
    finally:
        writer.close()


async def measure_transfer(
    gateway_pid: int, label: tuple[str, str], size: int, run: Callable[[], Awaitable[bool]]
) -> Transfer:
    stop = asyncio.Event()
    before = rss_bytes(gateway_pid)
    sampler = spawn(_sample_peak(gateway_pid, stop), name="rss-sampler")
    start = time.monotonic()
    error = ""
    try:
        intact = await asyncio.wait_for(run(), TRANSFER_TIMEOUT)
    except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError) as exc:
        intact, error = False, f"{type(exc).__name__}: {exc}"
    finally:
        stop.set()
        peak = await sampler
    elapsed = time.monotonic() - start
    return Transfer(label[0], label[1], size, elapsed, before, peak, intact, error)


async def run_transfers(
    gateway_pid: int, gateway_port: int, backend_port: int, size: int, stall: float
) -> list[Transfer]:
    """Serve the backend on ``backend_port`` and push four ``size`` transfers through the
    gateway: upload and download, each with Content-Length and chunked framing."""
    backend = Backend(stall)
    server = await asyncio.start_server(backend.handle, "127.0.0.1", backend_port)
    try:
        # Warm up pools and buffers so the baseline is the gateway's steady state.
        await download(gateway_port, 1 << 20, chunked=False, stall=0.0)
        await upload(gateway_port, 1 << 20, chunked=True)
        results = []
        for chunked in (False, True):
            framing = "chunked" if chunked else "content-length"
            up = partial(upload, gateway_port, size, chunked=chunked)
            results.append(await measure_transfer(gateway_pid, ("upload", framing), size, up))
            down = partial(download, gateway_port, size, chunked=chunked, stall=stall)
            results.append(await measure_transfer(gateway_pid, ("download", framing), size, down))
        return results
    finally:
        server.close()
        await server.wait_closed()
