"""Tests: doubles that drive the connection pools without sockets or an event loop: a clock
with timers, a connector whose attempts the test completes, connections the test closes, and
waiters that record what they were handed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.connector import ConnectionOwner
from gateway_core.upstream.host import Host
from gateway_core.upstream.pools import ClusterPools
from gateway_core.upstream.resources import ResourceManager


class FakeTimer:
    def __init__(self, due: float, callback: Callable[[], object]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """``time`` and ``call_later``; ``advance`` moves the clock and fires what is due, in order."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], object]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled]

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = [t for t in self.pending() if t.due <= end]
            if not due:
                break
            timer = min(due, key=lambda t: t.due)
            self.timers.remove(timer)
            self.now = max(self.now, timer.due)
            timer.callback()
        self.now = end


class FakeTransport:
    def __init__(self) -> None:
        self.closing = False

    def is_closing(self) -> bool:
        return self.closing


class FakeConn:
    """A connection: ``close`` starts closing it (as a transport would); ``lost`` is the later
    ``connection_lost`` that reports it to the pool."""

    def __init__(self, owner: ConnectionOwner[FakeConn], name: str) -> None:
        self.owner = owner
        self.name = name
        self.closed = False
        self.requests = 0
        self.idle_since = 0.0
        self.transport: Any = FakeTransport()

    def __repr__(self) -> str:
        return f"<conn {self.name}>"

    def close(self) -> None:
        self.closed = True
        self.transport.closing = True

    def lost(self) -> None:
        self.close()
        self.owner.on_closed(self)

    def finish(self) -> None:
        """A response completed: back to the pool, or closed, as the upstream side does it."""
        self.requests += 1
        if self.owner.may_reuse(self):
            self.owner.release(self)
        else:
            self.lost()


@dataclass
class Attempt:
    owner: ConnectionOwner[FakeConn]
    host: Host
    tls: ClientTlsSlot | None
    server_hostname: str | None
    done: Callable[[FakeConn | None, str], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeConnector:
    """Records connect attempts; the test decides how each ends."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        self.made = 0

    def connect(
        self,
        owner: ConnectionOwner[FakeConn],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        done: Callable[[FakeConn | None, str], None],
    ) -> Attempt:
        attempt = Attempt(owner, host, tls, server_hostname, done)
        self.attempts.append(attempt)
        return attempt

    def open(self) -> list[Attempt]:
        return [a for a in self.attempts if not a.cancelled]

    def succeed(self, attempt: Attempt | None = None) -> FakeConn:
        attempt = attempt or self.attempts[0]
        self.attempts.remove(attempt)
        self.made += 1
        conn = FakeConn(attempt.owner, f"{attempt.host.label}#{self.made}")
        attempt.done(conn, "")
        return conn

    def fail(self, attempt: Attempt | None = None, reason: str = "connection refused") -> None:
        attempt = attempt or self.attempts[0]
        self.attempts.remove(attempt)
        attempt.done(None, reason)


@dataclass
class Events:
    """The cluster's side of connect outcomes."""

    connected: list[str] = field(default_factory=list)
    failed: list[tuple[str, bool]] = field(default_factory=list)
    extra_data: list[str] = field(default_factory=list)

    def on_connected(self, host: Host) -> None:
        self.connected.append(host.label)

    def on_connect_failed(self, host: Host, timeout: bool) -> None:
        self.failed.append((host.label, timeout))

    def on_extra_data(self, host: Host) -> None:
        self.extra_data.append(host.label)


class Waiter:
    """A request waiting for a connection; records what it got."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.conn: FakeConn | None = None
        self.failure: tuple[str, bool] | None = None

    def __repr__(self) -> str:
        return f"<waiter {self.name}>"

    def on_connection(self, conn: FakeConn) -> None:
        assert self.conn is None and self.failure is None, f"{self} called twice"
        self.conn = conn

    def on_connect_failed(self, reason: str, timeout: bool) -> None:
        assert self.conn is None and self.failure is None, f"{self} called twice"
        self.failure = (reason, timeout)


@dataclass
class Rig:
    limits: PoolLimits
    loop: FakeLoop
    connector: FakeConnector
    events: Events
    resources: ResourceManager
    pools: ClusterPools[FakeConn]

    def counts(self) -> tuple[int, int]:
        """(connections held, pending requests) on the breakers."""
        r = self.resources
        return r.connections.count, r.pending_requests.count


def rig(limits: PoolLimits | None = None, **pool_options: Any) -> Rig:
    limits = limits or PoolLimits()
    loop, connector, events = FakeLoop(), FakeConnector(), Events()
    resources = ResourceManager(limits)
    pools: ClusterPools[FakeConn] = ClusterPools(
        resources, limits, connector, events, None, loop=loop, **pool_options
    )
    return Rig(limits, loop, connector, events, resources, pools)


def hosts(count: int) -> list[Host]:
    return [Host(f"10.0.0.{i + 1}", 80) for i in range(count)]
