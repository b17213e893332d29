"""Data path: the pool of one upstream host for multiplexed (HTTP/2) connections.

Same limits and same cluster-wide bookkeeping as ``HostPool`` (a connection holds one
``connections`` resource, a queued request one ``pending_requests``), but a connection serves
many requests at once: it is handed to every request while it has stream capacity (Envoy's
HTTP/2 connection pool). A new connection is opened only when the streams the open and
connecting connections can still take fall short of the requests waiting (Envoy's
``connecting_stream_capacity``), so one client's burst does not open a connection per request.
A connection with no stream for ``idleTimeout`` closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.connector import PooledConnection
from gateway_core.upstream.host import Host
from gateway_core.upstream.pool import HostPool, Overflow, PoolGroup, PoolWaiter

CONNECTING_CAPACITY = 100
"""Streams a connection still connecting is expected to take (the usual
SETTINGS_MAX_CONCURRENT_STREAMS); bounded by ``maxConcurrentStreams``."""


class MuxConnection(PooledConnection, Protocol):
    @property
    def streams(self) -> Mapping[int, object]: ...

    def capacity(self) -> int: ...
    def drain(self) -> None: ...


class MuxHostPool(HostPool[MuxConnection]):
    __slots__ = ("max_streams", "ready")

    def __init__(
        self,
        group: PoolGroup[MuxConnection],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        *,
        max_streams: int,
    ) -> None:
        super().__init__(group, host, tls, server_hostname)
        self.ready: list[MuxConnection] = []
        """Open connections that take new streams (in the order they were opened)."""
        self.max_streams = max_streams

    @property
    def busy(self) -> int:
        return sum(1 for c in self.connections if c.streams)

    def acquire(self, waiter: PoolWaiter[MuxConnection]) -> None:
        for conn in self.ready:
            if conn.capacity() > 0:
                waiter.on_connection(conn)  # opens its stream now, taking the capacity
                return
        group = self.group
        resources = group.resources
        expected = self.connecting * min(self.max_streams, CONNECTING_CAPACITY)
        if expected > len(self.waiters) and resources.pending_requests.try_inc():
            self.waiters.append((group.ticket(), waiter))  # a connection under way takes it
            group.waiting(self)
            return
        connections = resources.connections
        if connections.can_create() or (not self.connections and not self.connecting):
            if not connections.can_create():
                connections.overflow += 1
            self._connect(waiter)
            return
        connections.overflow += 1
        if not resources.pending_requests.try_inc():
            raise Overflow
        self.waiters.append((group.ticket(), waiter))
        group.waiting(self)

    def connected(
        self,
        waiter: PoolWaiter[MuxConnection],
        conn: MuxConnection | None,
        reason: str,
        timeout: bool = False,
    ) -> None:
        if conn is not None and not conn.closed:
            self.ready.append(conn)
        super().connected(waiter, conn, reason, timeout)
        if conn is not None and not conn.closed:
            self.release(conn)  # the new connection also serves the queue

    def release(self, conn: MuxConnection) -> None:
        """A stream of ``conn`` ended, or its host allows more streams: serve the queue."""
        waiters = self.waiters
        while waiters and conn.capacity() > 0:
            _, waiter = waiters.popleft()
            self.group.resources.pending_requests.dec()
            waiter.on_connection(conn)
        if self._closing and not conn.streams:
            conn.close()
            return
        if not conn.streams and conn in self.ready:
            loop = self.group.loop
            conn.idle_since = loop.time()
            if self._sweeper is None:
                self._sweeper = loop.call_later(self.group.limits.idle_timeout, self._close_idle)

    def _close_idle(self) -> None:
        self._sweeper = None
        loop = self.group.loop
        now = loop.time()
        limit = self.group.limits.idle_timeout
        quiet = [c for c in self.ready if not c.streams]
        for conn in quiet:
            if now - conn.idle_since >= limit:
                self.ready.remove(conn)
                conn.close()
        left = [c for c in self.ready if not c.streams]
        if left and not self._closing:
            due = min(c.idle_since for c in left) + limit
            self._sweeper = loop.call_later(max(due - now, 0.001), self._close_idle)

    def close_one_idle(self) -> bool:
        quiet = [c for c in self.ready if not c.streams]
        if not quiet:
            return False
        oldest = min(quiet, key=lambda c: c.idle_since)
        self.ready.remove(oldest)
        oldest.close()
        return True

    def on_closed(self, conn: MuxConnection) -> None:
        try:
            self.ready.remove(conn)
        except ValueError:
            pass
        super().on_closed(conn)

    def close(self, reason: str = "connection pool closed") -> None:
        super().close(reason)
        for conn in list(self.ready):
            conn.drain()  # GOAWAY once its streams end
        self.ready.clear()
