"""Tests: a gateway without sockets for the router's state machine (``Exchange`` and its
attempts): real client connections, real clusters and pools, real upstream connections on
fake transports, one fake clock.

``Gateway`` is the process as a client connection sees it (``GatewayContext``) with a
``Cluster`` per cluster spec of a snapshot compiled from YAML. Its pools get their connections
from a ``Connector`` whose attempts the test completes (``accept``: a real
``UpstreamConnection``, or ``H2UpstreamConnection`` for an HTTP/2 cluster, on a fake transport;
``refuse``). Events go in as client bytes (``Client.send``), upstream bytes
(``Upstream.reply``), a peer's close (``Upstream.close``, ``Client.go_away``) and clock moves
(``Gateway.advance``); what comes out is what each side's transport was given, and what the
process recorded for each finished exchange. As on an event loop, a transport's close reaches
its protocol's ``connection_lost`` on a later turn, which every event runs (``settle``).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway_core.pipeline import build_snapshot
from gateway_core.proxy.downstream import DownstreamProtocol
from gateway_core.proxy.h2_upstream import H2UpstreamConnection
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.snapshot import NodeInfo, Snapshot
from gateway_core.upstream.client_tls import ClientContextStore, ClientTlsSlot
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.connector import ConnectionOwner
from gateway_core.upstream.host import Host
from tests.gateway_core.proxy.fakes import FakeListener, FakeLoop, FakeRuntime, FakeTransport


def compile_config(directory: Path, text: str) -> Snapshot:
    path = directory / "config.yaml"
    path.write_text(text)
    result = build_snapshot([path], NodeInfo())
    assert result.snapshot is not None, result.diagnostics
    return result.snapshot


class LoopClock(FakeLoop):
    """The event loop's clock and timers: ``advance`` fires what is due in time order, each
    at its own time (a timer armed by a callback fires too when due); ``advance(0)`` runs the
    callbacks made ready "soon" (``call_later(0, ...)``)."""

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [t for t in self.timers if not t.cancelled and not t.fired and t.when <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.when)
            self.now = max(self.now, timer.when)
            timer.fire()
        self.now = end
        self.timers = [t for t in self.timers if not t.cancelled and not t.fired]

    def monotonic(self) -> float:
        return self.now


class UpstreamTransport(FakeTransport):
    """The socket of one upstream connection. Closing it reports ``connection_lost`` to the
    connection on a later loop turn, as asyncio does."""

    def __init__(self, loop: LoopClock, protocol: Any) -> None:
        super().__init__()
        self.loop = loop
        self.protocol = protocol

    def close(self) -> None:
        self._lose()
        self.closed = True

    def abort(self) -> None:
        self._lose()
        self.aborted = True

    def _lose(self) -> None:
        if not self.is_closing():
            self.loop.call_later(0, self.protocol.connection_lost, None)


@dataclass
class Upstream:
    """One accepted upstream connection, seen from the host's side."""

    host: str
    conn: Any
    transport: UpstreamTransport
    settle: Callable[[], None]

    @property
    def received(self) -> bytes:
        """Every byte the gateway wrote to this connection."""
        return bytes(self.transport.written)

    @property
    def gone(self) -> bool:
        """The gateway closed (or aborted) this connection and the loop reported it lost."""
        return self.transport.is_closing() and self.conn.closed

    def reply(self, data: bytes) -> None:
        self.conn.data_received(data)
        self.settle()

    def close(self) -> None:
        """The host closes the connection (an EOF or a reset reaches the gateway)."""
        if not self.transport.is_closing():
            self.transport.closed = True
            self.conn.connection_lost(None)
        self.settle()


@dataclass
class Attempt:
    """A connect attempt the pool started; the test ends it."""

    owner: ConnectionOwner[Any]
    host: Host
    done: Callable[[Any, str], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class Connector:
    """The pools' ``Connector``: records attempts; ``accept`` hands back a real connection of
    ``protocol`` on an ``UpstreamTransport``, ``refuse`` fails the attempt."""

    loop: LoopClock
    protocol: Callable[[ConnectionOwner[Any]], Any]
    settle: Callable[[], None]
    attempts: list[Attempt] = field(default_factory=list)
    accepted: list[Upstream] = field(default_factory=list)

    def connect(
        self,
        owner: ConnectionOwner[Any],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        done: Callable[[Any, str], None],
    ) -> Attempt:
        attempt = Attempt(owner, host, done)
        self.attempts.append(attempt)
        return attempt

    def waiting(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.cancelled]

    def _take(self) -> Attempt:
        waiting = self.waiting()
        assert waiting, "no connect attempt is open"
        attempt = waiting[0]
        self.attempts.remove(attempt)
        return attempt

    def accept(self) -> Upstream:
        """Complete the oldest open attempt with a connection."""
        attempt = self._take()
        conn = self.protocol(attempt.owner)
        transport = UpstreamTransport(self.loop, conn)
        conn.connection_made(transport)
        up = Upstream(attempt.host.label, conn, transport, self.settle)
        self.accepted.append(up)
        attempt.done(conn, "")
        self.settle()
        return up

    def refuse(self, reason: str = "connection refused") -> str:
        """Fail the oldest open attempt; returns its host."""
        attempt = self._take()
        attempt.done(None, reason)
        self.settle()
        return attempt.host.label


class _NoDns:
    """Clusters here are never started: nothing resolves."""

    async def resolve(self, name: str) -> Any:
        raise AssertionError(f"unexpected DNS lookup of {name}")


@dataclass
class Outcome:
    """What the process recorded about one finished exchange."""

    status: int
    flags: list[str]
    attempts: int
    host: str | None


class Gateway(FakeRuntime):
    """The process (``GatewayContext``) with live clusters built from the snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self.loop = LoopClock()
        self.outcomes: list[Outcome] = []
        self.h1 = Connector(self.loop, UpstreamConnection, self.settle)
        self.h2 = Connector(self.loop, H2UpstreamConnection, self.settle)
        self.live: dict[str, Cluster] = {
            key: Cluster(
                spec,
                rng=random.Random(2),
                clock=self.loop,
                resolver=_NoDns(),  # type: ignore[arg-type]
                connector=self.h1,
                tls_store=ClientContextStore(),
                h2_connector=self.h2,
                loop=self.loop,  # type: ignore[arg-type]
            )
            for key, spec in snapshot.clusters.items()
        }
        self.clusters = self.live

    def cluster(self, service: str) -> Cluster:
        (cluster,) = [c for key, c in self.live.items() if key.endswith("|" + service)]
        return cluster

    def observe(self, ex: Any, now: float) -> None:
        host = ex.host.label if ex.host is not None else None
        self.outcomes.append(Outcome(ex.status, [f.value for f in ex.flags], ex.attempts, host))

    def settle(self) -> None:
        """One loop turn: callbacks due now (a transport's ``connection_lost``) run."""
        self.loop.advance(0)

    def advance(self, seconds: float) -> None:
        self.loop.advance(seconds)


class Client:
    """One client connection to the gateway."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        listener = FakeListener(gw.snapshot.listeners[0].servers[0].route_table)
        self.conn = DownstreamProtocol(gw, listener, gw.loop)  # type: ignore[arg-type]
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.conn.data_received(data)
        self.gw.settle()

    def go_away(self) -> None:
        """The client's connection drops."""
        self.transport.closed = True
        self.conn.connection_lost(ConnectionResetError())
        self.gw.settle()

    @property
    def received(self) -> bytes:
        return bytes(self.transport.written)

    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", self.received)]


def get(path: bytes, host: bytes = b"shop.example", extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n" + extra + b"\r\n"


def ok(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
