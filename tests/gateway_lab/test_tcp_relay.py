"""Tests: the TCP relay balances connections, not requests — real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from gateway_lab.tcp_relay import TcpRelay
from tests.conftest import free_port

IO_TIMEOUT = 10.0


class Backend:
    """A TCP server that answers each line with ``<name>:<line>`` and ``bye <name>`` at EOF."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.accepted = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return "127.0.0.1", int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        while line := await reader.readline():
            if line.startswith(b"sha256 "):
                digest = hashlib.sha256(await reader.readexactly(int(line.split()[1])))
                writer.write(digest.hexdigest().encode() + b"\n")
                continue
            writer.write(self.name.encode() + b":" + line)
            await writer.drain()
        writer.write(f"bye {self.name}\n".encode())
        writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [Backend(f"b{i}") for i in range(3)]
    for b in started:
        await b.start()
    try:
        yield started
    finally:
        for b in started:
            await b.stop()


@pytest.fixture
async def relay(backends: list[Backend]) -> AsyncIterator[TcpRelay]:
    addresses = [b.server.sockets[0].getsockname()[:2] for b in backends if b.server]
    r = TcpRelay([(str(h), int(p)) for h, p in addresses])
    await r.start()
    try:
        yield r
    finally:
        await r.close()


async def talk(relay: TcpRelay, lines: int) -> list[bytes]:
    """One connection: ``lines`` requests, half-close, then everything the backend said."""
    reader, writer = await asyncio.open_connection(*relay.address)
    answers = []
    for i in range(lines):
        writer.write(f"req{i}\n".encode())
        answers.append(await asyncio.wait_for(reader.readline(), IO_TIMEOUT))
    writer.write_eof()
    answers.append(await asyncio.wait_for(reader.readline(), IO_TIMEOUT))
    assert await asyncio.wait_for(reader.read(), IO_TIMEOUT) == b""
    writer.close()
    await writer.wait_closed()
    return answers


async def test_connections_round_robin_and_stay_on_their_backend(
    relay: TcpRelay, backends: list[Backend]
) -> None:
    """12 connections x 5 requests: 4 connections per backend, every request of a connection
    answered by that connection's backend (connection-level, not request-level, balancing)."""
    served: Counter[str] = Counter()
    for _ in range(12):
        answers = await talk(relay, 5)
        names = {a.split(b":")[0] for a in answers[:-1]}
        assert len(names) == 1, answers
        name = names.pop().decode()
        assert answers[-1] == f"bye {name}\n".encode()  # the half-close reached the backend
        served[name] += 1
    assert served == {"b0": 4, "b1": 4, "b2": 4}
    assert [b.accepted for b in backends] == [4, 4, 4]
    assert sorted(relay.connections.values()) == [4, 4, 4]


async def test_concurrent_connections_spread_too(relay: TcpRelay) -> None:
    """30 connections at once: 10 per backend, whatever the interleaving."""
    results = await asyncio.gather(*(talk(relay, 2) for _ in range(30)))
    counts = Counter(r[0].split(b":")[0] for r in results)
    assert counts == {b"b0": 10, b"b1": 10, b"b2": 10}


async def test_large_transfers_arrive_intact(relay: TcpRelay) -> None:
    """2 MiB through the relay: the backend's digest matches what was sent."""
    payload = bytes(range(256)) * (8 * 1024)
    reader, writer = await asyncio.open_connection(*relay.address)
    writer.write(f"sha256 {len(payload)}\n".encode() + payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), IO_TIMEOUT)
    assert answer == hashlib.sha256(payload).hexdigest().encode() + b"\n"
    writer.close()
    await writer.wait_closed()


async def test_unreachable_backend_closes_the_client_and_is_counted() -> None:
    """A refused backend: the client sees the connection end; the next one goes on in turn."""
    live = Backend("live")
    address = await live.start()
    relay = TcpRelay([("127.0.0.1", free_port()), address], connect_timeout=2.0)
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection(*relay.address)
        try:
            assert await asyncio.wait_for(reader.read(), IO_TIMEOUT) == b""
        except ConnectionResetError:
            pass  # an abort may surface as a reset
        writer.close()
        assert (await talk(relay, 1))[0] == b"live:req0\n"
        assert (relay.failed, sum(relay.connections.values())) == (1, 1)
    finally:
        await relay.close()
        await live.stop()


async def test_close_ends_open_connections(relay: TcpRelay) -> None:
    """Closing the relay ends the relayed connections it still holds."""
    reader, writer = await asyncio.open_connection(*relay.address)
    writer.write(b"hi\n")
    assert (await asyncio.wait_for(reader.readline(), IO_TIMEOUT)).endswith(b":hi\n")
    await asyncio.wait_for(relay.close(), IO_TIMEOUT)
    try:
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT) == b""
    except ConnectionResetError:
        pass
    writer.close()


def test_a_relay_needs_backends() -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        TcpRelay([])
