"""Tests: hostile HTTP/2 peers on real loopback sockets, and what to watch while they attack.

``RawH2`` writes exactly the frames a test builds (hyperframe, hpack) on a non-blocking socket
and reads the gateway's frames back with a deadline. Reading and writing are independent (no
stream transport that drops what it has read once a write fails), so a GOAWAY that arrives
just before the gateway resets the connection is still seen. ``Prober`` is the well-behaved
client that must keep being served while an attack runs; ``peak_growth`` measures, with
tracemalloc, how much more memory the process (the gateway runs in it) held at its peak.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import ssl
import termios
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
)

from gateway_core.proxy.h2_downstream import H2Downstream
from gateway_core.utils.tasks import spawn
from gateway_lab.demo_pod import STATE
from tests.conftest import free_port
from tests.functional.h2client import H2Client
from tests.functional.support import config
from tests.gateway_core.proxy.codec.h2_testkit import GET, headers_frame

if TYPE_CHECKING:
    from tests.helpers import GatewayHarness, PodHandle

T = TypeVar("T")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""RFC 9113 §3.4, written out here rather than taken from the code under test."""
Fields = list[tuple[bytes, bytes]]
# Well-behaved clients go to /echo on one pod; every attack goes to another, whose request
# count then tells what reached an upstream.
RULES = """  - match: [{uri: {prefix: /echo}}]
    route: [{destination: {host: echo.local}}]
  - route: [{destination: {host: attack.local}}]"""


@dataclass
class Site:
    """A gateway on ``port`` (plaintext: h2c with prior knowledge) in front of two pods."""

    harness: GatewayHarness
    port: int
    good: PodHandle
    attacked: PodHandle

    def attacked_requests(self) -> int:
        """Requests the attacked pod has received so far."""
        return int(self.attacked.runner.app[STATE].requests)

    def side_of(self, raw: RawH2) -> H2Downstream | None:
        """The gateway's end of ``raw``'s connection, while it is open."""
        for conn in list(self.harness.gateway.runtime.connections):
            if isinstance(conn, H2Downstream) and conn.peer_address[1] == raw.local_port:
                return conn
        return None


async def start_site(
    gateway: Callable[..., Awaitable[Any]], pods: Callable[..., Awaitable[Any]]
) -> Site:
    good = await pods("echo", cluster="c1", pod="good")
    attacked = await pods("echo", cluster="c1", pod="attacked")
    port = free_port()
    services = {"echo.local": [good.port], "attack.local": [attacked.port]}
    harness = await gateway(config(port, RULES, services))
    return Site(harness, port, good, attacked)


class RawH2:
    """One client connection that sends whatever frames it is given (no flow control, no
    ACKs but the first SETTINGS ACK, unless a test writes them)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.local_port = int(sock.getsockname()[1])
        self.loop = asyncio.get_running_loop()
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.frames: list[Frame] = []
        """Every frame received so far, in order."""
        self.heads: dict[int, list[Fields]] = {}
        """Decoded header blocks (response heads, trailers) per stream."""
        self.eof = False
        self._buf = bytearray()
        self._block: tuple[int, bytearray] | None = None

    @classmethod
    async def connect(
        cls, port: int, *, settings: dict[int, int] | None = None, rcvbuf: int = 0
    ) -> RawH2:
        """Connect, send the preface, SETTINGS (``settings``) and an ACK of the gateway's
        SETTINGS. ``rcvbuf`` shrinks the socket's receive buffer, for peers that never read
        (the gateway's own send buffer still takes a few MB before its writes back up)."""
        raw = await cls.open(port, rcvbuf)
        hello = SettingsFrame(0)
        hello.settings.update(settings or {})
        await raw.send(PREFACE, hello, SettingsFrame(0, flags=["ACK"]))
        return raw

    @classmethod
    async def open(cls, port: int, rcvbuf: int = 0) -> RawH2:
        """Connect and send nothing."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each write goes at once
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        try:
            connecting = asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            await asyncio.wait_for(connecting, 5)
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def all_read_by(self, conn: H2Downstream) -> bool:
        """The gateway (``conn``) has read every byte written here: the kernel holds none in
        either socket (TIOCOUTQ, FIONREAD). Waiting for this after each write makes every
        write a read of its own for the gateway."""
        transport = conn.transport
        theirs = None if transport is None else transport.get_extra_info("socket")
        if theirs is None or conn.closed:
            return True
        return not _ioctl(self.sock.fileno(), termios.TIOCOUTQ) and not _ioctl(
            theirs.fileno(), termios.FIONREAD
        )

    # -- building frames ---------------------------------------------------------------------
    def headers(
        self,
        stream_id: int,
        fields: Fields = GET,
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> HeadersFrame:
        return headers_frame(stream_id, self.encoder.encode(fields), end_stream, end_headers)

    def get(self, stream_id: int, path: str, *, end_stream: bool = True) -> HeadersFrame:
        return self.headers(stream_id, request(path), end_stream=end_stream)

    # -- writing -----------------------------------------------------------------------------
    async def send(self, *chunks: bytes | Frame) -> bool:
        """Write the chunks; False when the gateway has closed or reset the connection."""
        data = b"".join(c if isinstance(c, bytes) else c.serialize() for c in chunks)
        try:
            await self.loop.sock_sendall(self.sock, data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    async def flood(self, chunk: bytes, total: int, within: float = 30.0) -> int:
        """Write ``chunk`` (whole frames) again and again, up to ``total`` bytes, until the
        gateway closes the connection; the bytes it took. Bounded in bytes and in time."""
        sent = 0
        async with asyncio.timeout(within):
            while sent < total:
                if not await self.send(chunk):
                    break
                sent += len(chunk)
        return sent

    # -- reading -----------------------------------------------------------------------------
    async def _read_more(self) -> bool:
        try:
            data = await self.loop.sock_recv(self.sock, 1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self._buf += data
        return True

    def _parse(self) -> list[Frame]:
        out: list[Frame] = []
        buf = self._buf
        i = 0
        while len(buf) - i >= 9:
            length = int.from_bytes(buf[i : i + 3])
            if len(buf) - i < 9 + length:
                break
            frame, _ = Frame.parse_frame_header(memoryview(bytes(buf[i : i + 9])))
            frame.parse_body(memoryview(bytes(buf[i + 9 : i + 9 + length])))
            self._decode(frame)
            out.append(frame)
            i += 9 + length
        del buf[:i]
        self.frames += out
        return out

    def _decode(self, frame: Frame) -> None:
        if isinstance(frame, HeadersFrame):
            self._block = (frame.stream_id, bytearray(frame.data))
        elif isinstance(frame, ContinuationFrame) and self._block is not None:
            self._block[1].extend(frame.data)
        else:
            return
        if "END_HEADERS" in frame.flags:
            sid, block = self._block
            self._block = None
            fields = [(bytes(n), bytes(v)) for n, v in self.decoder.decode(bytes(block), raw=True)]
            self.heads.setdefault(sid, []).append(fields)

    async def read_until(
        self, match: Callable[[Frame], bool], within: float = 10.0
    ) -> Frame | None:
        """Read frames until one matches (returned) or the connection ends (None)."""
        async with asyncio.timeout(within):
            while True:
                for frame in self._parse():
                    if match(frame):
                        return frame
                if self.eof or not await self._read_more():
                    self._parse()
                    return None

    async def goaway(self, within: float = 10.0) -> GoAwayFrame | None:
        """The gateway's next GOAWAY, or None when the connection ended without one."""
        frame = await self.read_until(lambda f: isinstance(f, GoAwayFrame), within)
        assert frame is None or isinstance(frame, GoAwayFrame)
        return frame

    async def until_closed(self, within: float = 10.0) -> list[Frame]:
        """Everything the gateway sent until it closed the connection."""
        await self.read_until(lambda f: False, within)
        return self.frames

    async def stream_end(self, stream_id: int, within: float = 10.0) -> Frame | None:
        """The frame that ended ``stream_id`` (END_STREAM or RST_STREAM), or a GOAWAY."""

        def ends(f: Frame) -> bool:
            if isinstance(f, GoAwayFrame):
                return True
            if f.stream_id != stream_id:
                return False
            return isinstance(f, RstStreamFrame) or "END_STREAM" in f.flags

        return await self.read_until(ends, within)

    def status(self, stream_id: int) -> int | None:
        for fields in self.heads.get(stream_id, []):
            for name, value in fields:
                if name == b":status":
                    return int(value)
        return None

    def body(self, stream_id: int) -> bytes:
        return b"".join(
            f.data for f in self.frames if isinstance(f, DataFrame) and f.stream_id == stream_id
        )

    def of_kind(self, kind: type[Frame]) -> list[Frame]:
        return [f for f in self.frames if isinstance(f, kind)]

    def rst_codes(self, stream_id: int) -> list[int]:
        return [
            int(f.error_code)
            for f in self.frames
            if isinstance(f, RstStreamFrame) and f.stream_id == stream_id
        ]


def _ioctl(fd: int, request: int) -> int:
    return int.from_bytes(fcntl.ioctl(fd, request, b"\0" * 4), "little")


def request(path: str, method: bytes = b"GET", extra: Fields | None = None) -> Fields:
    fields = [(n, path.encode()) if n == b":path" else (n, v) for n, v in GET]
    fields = [(n, method) if n == b":method" else (n, v) for n, v in fields]
    return fields + (extra or [])


async def poll(check: Callable[[], T | None], within: float, what: str) -> T:
    """Wait, with a deadline, until ``check()`` is true-ish (not None, not False); its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (value := check()):
        assert loop.time() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.005)
    return value


async def peak_growth(action: Awaitable[T]) -> tuple[T, int]:
    """Run ``action``; its result, and how many bytes more than at its start Python held at
    the peak while it ran (tracemalloc: the gateway, the pods and the clients together)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = await action
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()


class Prober:
    """A well-behaved HTTP/2 client that keeps asking on its own connection while an attack
    runs: ``async with Prober(port) as probe`` waits for a first answer, and on leaving
    requires three more answers and one on a fresh connection. Every answer must be a 200
    within ``slowest`` seconds; ``answered`` counts them and ``worst`` is the longest wait."""

    def __init__(
        self,
        port: int,
        slowest: float = 5.0,
        *,
        tls: ssl.SSLContext | None = None,
        sni: str | None = None,
    ) -> None:
        self.port = port
        self.tls = tls
        self.sni = sni
        self.slowest = slowest
        self.answered = 0
        self.worst = 0.0
        self._stop = False
        self._client: H2Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Prober:
        self._client = await H2Client.connect(self.port, tls=self.tls, sni=self.sni)
        self._task = spawn(self._run(self._client), name="h2 prober")
        await self.answers(1)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.answers(self.answered + 3)
                fresh = await H2Client.connect(self.port, tls=self.tls, sni=self.sni)
                try:
                    await self._ask(fresh)
                finally:
                    await fresh.close()
        finally:
            self._stop = True
            if self._task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._task, self.slowest + 1)
            if self._client is not None:
                await self._client.close()

    async def answers(self, count: int) -> None:
        """Wait until ``count`` answers in all have come (each within ``slowest``)."""
        loop = asyncio.get_running_loop()
        limit = loop.time() + self.slowest * (count - self.answered + 1)
        while self.answered < count:
            task = self._task
            assert task is not None
            if task.done():
                task.result()  # the prober's own failure
                raise AssertionError("the prober stopped")
            assert loop.time() < limit, f"the prober got {self.answered} of {count} answers"
            await asyncio.sleep(0.005)

    async def _ask(self, client: H2Client) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        stream_id = client.request("GET", "probe.example.com", "/echo/probe")
        response = await client.response(stream_id, within=self.slowest)
        assert response.status == 200, (response.status, response.reset, client.goaway)
        client.responses.pop(stream_id)
        self.worst = max(self.worst, loop.time() - start)

    async def _run(self, client: H2Client) -> None:
        for _ in range(100_000):  # bounded; and each answer is bounded in time
            if self._stop:
                return
            await self._ask(client)
            self.answered += 1
