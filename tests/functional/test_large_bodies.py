"""Functional: 100 MB uploads and downloads through a gateway process with bounded memory.

The gateway runs as a real ``tier2-gateway run`` subprocess so its resident set size can be read
from ``/proc/<pid>/status``. Bodies stream both ways with chunked and Content-Length framing;
each transfer also stalls one side for a while, so the gateway must apply back-pressure instead
of buffering: its RSS may grow by less than 20 MB over all transfers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_lab.demo_pod import pattern_bytes
from tests.conftest import free_port
from tests.functional.support import config, connect

SIZE = 100 * 1024 * 1024
PIECE = 64 * 1024
STALL_AT = 20 * 1024 * 1024
RSS_BUDGET_KB = 20 * 1024
BLOCK = pattern_bytes(PIECE)
EXPECTED_SHA = hashlib.sha256(BLOCK * (SIZE // PIECE)).hexdigest()

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@contextlib.contextmanager
def gateway_process(tmp_path: Path, yaml_text: str) -> Iterator[subprocess.Popen[bytes]]:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml_text)
    admin = free_port()
    script = shutil.which("tier2-gateway", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "tier2_gateway"]
    proc = subprocess.Popen(
        [
            *command,
            "run",
            "--config",
            str(config_file),
            "--access-log",
            "off",
            "--bind-address",
            "127.0.0.1",
            "--admin-address",
            f"127.0.0.1:{admin}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            url = f"http://127.0.0.1:{admin}/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None:
                raise AssertionError("gateway exited during startup")
            subprocess.run(["sleep", "0.05"], check=True)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _bulk_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """``GET /cl`` streams SIZE bytes with Content-Length; ``POST /sink`` reads a body
    (pausing at STALL_AT) and answers its size and sha256."""
    head = await reader.readuntil(b"\r\n\r\n")
    if head.startswith(b"GET"):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for _ in range(SIZE // PIECE):
            writer.write(BLOCK)
            await writer.drain()
    else:
        length = int(
            next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            ).split(b":")[1]
        )
        digest, received, stalled = hashlib.sha256(), 0, False
        while received < length:
            data = await reader.read(min(PIECE, length - received))
            if not data:
                break
            digest.update(data)
            received += len(data)
            if received >= STALL_AT and not stalled:
                stalled = True
                await asyncio.sleep(1.0)
        body = json.dumps({"received": received, "sha256": digest.hexdigest()}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def bulk_backend() -> AsyncIterator[int]:
    server = await asyncio.start_server(_bulk_server, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


async def _read_head(reader: asyncio.StreamReader) -> dict[bytes, bytes]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw[:-4].split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 200"), lines[0]
    return {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}


async def download(port: int, target: bytes) -> tuple[int, str, bytes]:
    """Stream a response body, stalling once at STALL_AT; returns (size, sha256, framing)."""
    digest, total, stalled = hashlib.sha256(), 0, False
    async with connect(port) as (reader, writer):
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
        headers = await _read_head(reader)
        chunked = headers.get(b"transfer-encoding") == b"chunked"
        remaining = int(headers.get(b"content-length", b"-1"))
        while True:
            if chunked:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                data = await reader.readexactly(size)
                await reader.readexactly(2)
            else:
                if remaining == 0:
                    break
                data = await reader.read(min(PIECE, remaining))
                assert data, "connection closed early"
                remaining -= len(data)
            digest.update(data)
            total += len(data)
            if total >= STALL_AT and not stalled:
                stalled = True
                await asyncio.sleep(1.0)
    return total, digest.hexdigest(), b"chunked" if chunked else b"length"


async def upload(port: int, target: bytes, *, chunked: bool) -> dict[str, Any]:
    async with connect(port) as (reader, writer):
        framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % SIZE
        writer.write(b"POST " + target + b" HTTP/1.1\r\nHost: h\r\n" + framing + b"\r\n\r\n")
        for _ in range(SIZE // PIECE):
            if chunked:
                writer.writelines((b"%x\r\n" % PIECE, BLOCK, b"\r\n"))
            else:
                writer.write(BLOCK)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        headers = await _read_head(reader)
        body = await reader.readexactly(int(headers[b"content-length"]))
    result: dict[str, Any] = json.loads(body)
    return result


async def test_100mb_bodies_stream_with_bounded_memory(
    pods: Callable[..., Any], tmp_path: Path
) -> None:
    """100 MB up and down, chunked and Content-Length, each stalled for a second on one side,
    pass intact through a gateway process whose RSS grows by less than 20 MB."""
    pod = await pods("echo")
    async with bulk_backend() as bulk_port:
        port = free_port()
        rules = """\
  - match: [{uri: {prefix: /cl}}, {uri: {prefix: /sink}}]
    route: [{destination: {host: bulk.svc}}]
  - route: [{destination: {host: pod.svc}}]
"""
        yaml_text = config(port, rules, {"pod.svc": [pod.port], "bulk.svc": [bulk_port]})
        with gateway_process(tmp_path, yaml_text) as proc:
            assert (await download(port, b"/bytes/1024"))[0] == 1024
            baseline = rss_kb(proc.pid)
            samples = [baseline]

            async def sample() -> None:
                while True:
                    samples.append(rss_kb(proc.pid))
                    await asyncio.sleep(0.05)

            sampler = asyncio.ensure_future(sample())
            try:
                size, sha, framing = await download(port, b"/bytes/%d" % SIZE)
                assert (size, sha, framing) == (SIZE, EXPECTED_SHA, b"chunked")
                size, sha, framing = await download(port, b"/cl")
                assert (size, sha, framing) == (SIZE, EXPECTED_SHA, b"length")
                result = await upload(port, b"/upload", chunked=True)
                assert result == {"received": SIZE, "sha256": EXPECTED_SHA}
                result = await upload(port, b"/sink", chunked=False)
                assert result == {"received": SIZE, "sha256": EXPECTED_SHA}
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            assert proc.poll() is None
    growth = max(samples) - baseline
    print(f"gateway RSS: baseline {baseline} kB, peak growth {growth} kB")
    assert growth < RSS_BUDGET_KB, f"RSS grew by {growth} kB"
