"""Data path: the keep-alive connection pool of one upstream host (and SNI), with Envoy's limits.

A request asks the pool of the host its load balancer picked. An idle connection is handed over
synchronously (no task, no await on the hot path). Otherwise a connection is opened if the
cluster's ``connections`` breaker allows it, and also when it does not but this host has no
connection at all, connecting or open (Envoy ``ConnPoolImplBase::tryCreateNewConnection``; both
count ``upstream_cx_overflow``): a request queued on a host with no connection would have nothing
to wake it. Else the request waits in a bounded queue (``pending_requests``), and beyond that it
fails at once with ``Overflow`` (503 ``UO``).

A queued request is woken by the first of: a connection of this host finishing a response, a
connection of this host closing (its slot opens a new one), or a connection slot freeing
anywhere in the cluster (``PoolGroup.slot_freed``, oldest waiter of the cluster first). When a
connect fails and nothing is left on this host to serve its queue, the queue fails too (Envoy
purges pending requests on a connect failure), so callers may retry elsewhere.

Connections idle for ``connectionPool.http.idleTimeout`` (Istio: 1 hour) are closed by one
sweep timer per pool that only runs while the pool has idle connections. Timers and the clock
come from the injected ``Scheduler``; connections come from the injected ``Connector``.
"""

from __future__ import annotations

import collections
from typing import Generic, Protocol

from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.connector import C, C_contra, Cancellable, Connector
from gateway_core.upstream.host import Host
from gateway_core.upstream.resources import ResourceManager
from gateway_core.utils.clock import Scheduler, Timer


class PoolWaiter(Protocol[C_contra]):
    """A request waiting for a connection (``UpstreamRequest``, a mirror)."""

    def on_connection(self, conn: C_contra) -> None: ...
    def on_connect_failed(self, reason: str, timeout: bool) -> None: ...


class Overflow(Exception):
    """The cluster's connection and pending-request limits are both exhausted."""


class PoolEvents(Protocol):
    """Connect outcomes the cluster records (stats, outlier detection)."""

    def on_connected(self, host: Host) -> None: ...
    def on_connect_failed(self, host: Host, timeout: bool) -> None: ...
    def on_extra_data(self, host: Host) -> None: ...


class PoolGroup(Protocol[C]):
    """What a pool shares with the other pools of its cluster (``upstream/pools.py``)."""

    resources: ResourceManager
    limits: PoolLimits
    connector: Connector[C]
    events: PoolEvents

    @property
    def loop(self) -> Scheduler: ...
    def ticket(self) -> int:
        """A number that orders waiters across the cluster's pools (oldest first)."""
        ...

    def waiting(self, pool: HostPool[C]) -> None:
        """``pool`` queued a waiter."""
        ...

    def slot_freed(self, pool: HostPool[C]) -> None:
        """A connection of ``pool`` ended and none of its own waiters took the slot."""
        ...

    def emptied(self, pool: HostPool[C]) -> None:
        """``pool`` has no connection, attempt or waiter left."""
        ...


class _Attempt(Generic[C]):
    """One connect for one waiter, bounded by the connect timeout."""

    __slots__ = ("handle", "over", "pool", "timer", "waiter")

    def __init__(self, pool: HostPool[C], waiter: PoolWaiter[C]) -> None:
        self.pool = pool
        self.waiter = waiter
        self.over = False
        self.handle: Cancellable | None = None
        self.timer: Timer | None = None

    def done(self, conn: C | None, reason: str) -> None:
        if self.over:
            if conn is not None:
                conn.close()  # arrived after the timeout gave up on it; it was never counted
            return
        self.over = True
        if self.timer is not None:
            self.timer.cancel()
        self.pool.connected(self.waiter, conn, reason)

    def timed_out(self) -> None:
        if self.over:
            return
        self.over = True
        if self.handle is not None:
            self.handle.cancel()
        seconds = self.pool.group.limits.connect_timeout
        self.pool.connected(self.waiter, None, f"connect timeout after {seconds:g}s", True)


class HostPool(Generic[C]):
    __slots__ = (
        "_closing",
        "_sweeper",
        "connecting",
        "connections",
        "empty_since",
        "group",
        "host",
        "idle",
        "last_use",
        "server_hostname",
        "tls",
        "waiters",
    )

    def __init__(
        self,
        group: PoolGroup[C],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
    ) -> None:
        self.group = group
        self.host = host
        self.tls = tls
        self.server_hostname = server_hostname
        self.idle: list[C] = []
        self.connections: set[C] = set()
        """Open connections (idle or busy); each holds one ``connections`` resource."""
        self.connecting = 0
        """Attempts in flight; each holds one ``connections`` resource too."""
        self.waiters: collections.deque[tuple[int, PoolWaiter[C]]] = collections.deque()
        self._closing = False
        self._sweeper: Timer | None = None
        self.empty_since: float | None = None
        self.last_use = 0
        """Set by the pool map on each lookup (least recently used pools are evicted first)."""

    @property
    def is_empty(self) -> bool:
        return not self.connections and not self.connecting and not self.waiters

    @property
    def busy(self) -> int:
        return len(self.connections) - len(self.idle)

    def acquire(self, waiter: PoolWaiter[C]) -> None:
        """Hand ``waiter`` a connection now, later, or raise Overflow."""
        idle = self.idle
        while idle:
            conn = idle.pop()
            transport = conn.transport
            # ``conn.usable``, inlined: this runs for every request.
            if not conn.closed and transport is not None and not transport.is_closing():
                waiter.on_connection(conn)
                return
            # Closing but not yet reported lost: ``on_closed`` will do its accounting.
        group = self.group
        resources = group.resources
        connections = resources.connections
        if connections.can_create():
            self._connect(waiter)
            return
        connections.overflow += 1
        if not self.connections and not self.connecting:
            self._connect(waiter)  # a host with no connection may always open one
            return
        if not resources.pending_requests.try_inc():
            raise Overflow
        self.waiters.append((group.ticket(), waiter))
        group.waiting(self)

    def cancel(self, waiter: PoolWaiter[C]) -> None:
        for i, (_, queued) in enumerate(self.waiters):
            if queued is waiter:
                del self.waiters[i]
                self.group.resources.pending_requests.dec()
                self._check_empty()
                return

    def may_reuse(self, conn: C) -> bool:
        limit = self.group.limits.max_requests_per_connection
        return not self._closing and (limit == 0 or conn.requests < limit)

    def release(self, conn: C) -> None:
        """A connection finished a response and may serve another request."""
        if self.waiters:
            _, waiter = self.waiters.popleft()
            self.group.resources.pending_requests.dec()
            waiter.on_connection(conn)
            return
        if self._closing:
            conn.close()  # handed back by an abandoned request after the pool closed
            return
        loop = self.group.loop
        conn.idle_since = loop.time()
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self.group.limits.idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        """Close connections idle for ``idle_timeout``; re-arm for the oldest one left."""
        self._sweeper = None
        loop = self.group.loop
        now = loop.time()
        limit = self.group.limits.idle_timeout
        expired = [c for c in self.idle if now - c.idle_since >= limit]
        for conn in expired:
            self.idle.remove(conn)
            conn.close()
        if self.idle and not self._closing:
            due = min(c.idle_since for c in self.idle) + limit
            self._sweeper = loop.call_later(max(due - now, 0.001), self._close_idle)

    def close_one_idle(self) -> bool:
        """Close the longest-idle connection (another host's waiter needs its slot)."""
        if not self.idle:
            return False
        oldest = min(self.idle, key=lambda c: c.idle_since)
        self.idle.remove(oldest)
        oldest.close()
        return True

    def on_extra_data(self) -> None:
        self.group.events.on_extra_data(self.host)

    def on_closed(self, conn: C) -> None:
        if conn not in self.connections:
            return  # lost before it was counted as open: the attempt did its accounting
        self.connections.discard(conn)
        self.group.resources.connections.dec()
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        if self.waiters and not self._closing and self._may_open():
            # The slot this connection held opens one for the oldest waiter here.
            self.wake_one()
        else:
            self.group.slot_freed(self)
        self._check_empty()

    def _may_open(self) -> bool:
        return self.group.resources.connections.can_create() or (
            not self.connections and not self.connecting
        )

    def wake_one(self) -> None:
        """Open a connection for the oldest waiter (a slot is free for it)."""
        _, waiter = self.waiters.popleft()
        self.group.resources.pending_requests.dec()
        self._connect(waiter)

    def _connect(self, waiter: PoolWaiter[C]) -> None:
        group = self.group
        group.resources.connections.inc()
        self.connecting += 1
        self.empty_since = None
        attempt = _Attempt(self, waiter)
        attempt.timer = group.loop.call_later(group.limits.connect_timeout, attempt.timed_out)
        handle = group.connector.connect(
            self, self.host, self.tls, self.server_hostname, attempt.done
        )
        if not attempt.over:
            attempt.handle = handle

    def connected(
        self, waiter: PoolWaiter[C], conn: C | None, reason: str, timeout: bool = False
    ) -> None:
        """The outcome of an attempt (called once by ``_Attempt``)."""
        self.connecting -= 1
        if conn is not None and conn.closed:
            conn, reason = None, "connection closed by the upstream"
        if conn is None:
            self._connect_failed(waiter, reason, timeout)
            return
        self.connections.add(conn)
        self.group.events.on_connected(self.host)
        waiter.on_connection(conn)

    def _connect_failed(self, waiter: PoolWaiter[C], reason: str, timeout: bool) -> None:
        group = self.group
        group.resources.connections.dec()
        group.events.on_connect_failed(self.host, timeout)
        purged: list[PoolWaiter[C]] = []
        if self.waiters and not self.connections and not self.connecting:
            # Nothing left on this host to serve its queue: fail it too (Envoy's purge).
            purged = [w for _, w in self.waiters]
            self.waiters.clear()
            group.resources.pending_requests.dec_by(len(purged))
        group.slot_freed(self)
        self._check_empty()
        waiter.on_connect_failed(reason, timeout)
        for other in purged:
            other.on_connect_failed(reason, timeout)

    def _check_empty(self) -> None:
        if self.empty_since is None and self.is_empty:
            self.empty_since = self.group.loop.time()
            self.group.emptied(self)

    def close(self, reason: str = "connection pool closed") -> None:
        """Stop reusing connections; idle ones close now, busy ones after their response, and
        queued requests fail with ``reason`` (a connect failure: they may retry elsewhere)."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()
        purged = [w for _, w in self.waiters]
        self.waiters.clear()
        if purged:
            self.group.resources.pending_requests.dec_by(len(purged))
        for waiter in purged:
            waiter.on_connect_failed(reason, False)
