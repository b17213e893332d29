"""Data path: keep-alive connection pools per upstream host, with Envoy-style limits.

A request asks the pool of the host its load balancer picked. An idle connection is handed over
synchronously (no task, no await on the hot path). Otherwise a connection is opened if the
cluster is below ``maxConnections``; else the request waits in a bounded queue
(``http1MaxPendingRequests``), and beyond that it fails at once with overflow (503 ``UO``).
Connections idle for ``connectionPool.http.idleTimeout`` (Istio: 1 hour) are closed by one
sweep timer per pool that only runs while the pool has idle connections.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.server.tls import TlsConfigError
from gateway_core.snapshot import UpstreamTls
from gateway_core.upstream.client_tls import check_upstream_peer
from gateway_core.upstream.host import Host
from gateway_core.utils.tasks import background

if TYPE_CHECKING:
    from gateway_core.upstream.cluster import Cluster


class PoolWaiter(Protocol):
    """A request waiting for a connection (implemented by ``Exchange``)."""

    def on_connection(self, conn: UpstreamConnection) -> None: ...
    def on_connect_failed(self, reason: str, timeout: bool) -> None: ...


class Overflow(Exception):
    """The cluster's connection and pending-request limits are both exhausted."""


class HostPool:
    __slots__ = (
        "_closing",
        "_loop",
        "_sweeper",
        "cluster",
        "connecting",
        "connections",
        "host",
        "idle",
        "server_hostname",
        "tls",
        "waiters",
    )

    def __init__(
        self,
        cluster: Cluster,
        host: Host,
        tls: UpstreamTls | None,
        server_hostname: str | None,
    ) -> None:
        self.cluster = cluster
        self.host = host
        self.tls = tls
        self.server_hostname = server_hostname
        self.idle: list[UpstreamConnection] = []
        self.connections: set[UpstreamConnection] = set()
        self.connecting = 0
        self.waiters: collections.deque[PoolWaiter] = collections.deque()
        self._closing = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """Fetched once: ``asyncio.get_running_loop`` makes a getpid system call each time."""

    def acquire(self, waiter: PoolWaiter) -> None:
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
        limits = self.cluster.spec.limits
        if self.cluster.open_connections < limits.max_connections:
            self._connect(waiter)
            return
        if self.cluster.pending_requests >= limits.max_pending_requests:
            raise Overflow
        self.cluster.pending_requests += 1
        self.waiters.append(waiter)

    def cancel(self, waiter: PoolWaiter) -> None:
        try:
            self.waiters.remove(waiter)
        except ValueError:
            return
        self.cluster.pending_requests -= 1

    def may_reuse(self, conn: UpstreamConnection) -> bool:
        limit = self.cluster.spec.limits.max_requests_per_connection
        return not self._closing and (limit == 0 or conn.requests < limit)

    def release(self, conn: UpstreamConnection) -> None:
        """A connection finished a response and may serve another request."""
        if self.waiters:
            waiter = self.waiters.popleft()
            self.cluster.pending_requests -= 1
            waiter.on_connection(conn)
            return
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        conn.idle_since = loop.time()
        self.idle.append(conn)
        if self._sweeper is None:
            limit = self.cluster.spec.limits.idle_timeout
            self._sweeper = loop.call_later(limit, self._close_idle)

    def _close_idle(self) -> None:
        """Close connections idle for ``idle_timeout``; re-arm for the oldest one left."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        limit = self.cluster.spec.limits.idle_timeout
        expired = [c for c in self.idle if now - c.idle_since >= limit]
        for conn in expired:
            self.idle.remove(conn)
            conn.close()
        if self.idle and not self._closing:
            due = min(c.idle_since for c in self.idle) + limit
            self._sweeper = loop.call_later(max(due - now, 0.001), self._close_idle)

    def on_closed(self, conn: UpstreamConnection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.cluster.open_connections -= 1
        try:
            self.idle.remove(conn)
        except ValueError:
            pass
        if self.waiters and not self._closing:
            # A slot freed up: open a connection for the oldest waiter.
            waiter = self.waiters.popleft()
            self.cluster.pending_requests -= 1
            self._connect(waiter)

    def _connect(self, waiter: PoolWaiter) -> None:
        self.cluster.open_connections += 1
        self.connecting += 1
        background(self._open(waiter), name=f"connect {self.host.label}")

    async def _open(self, waiter: PoolWaiter) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.cluster.spec.limits.connect_timeout
        factory: Callable[[], UpstreamConnection] = lambda: UpstreamConnection(self)  # noqa: E731
        tls = self.tls
        try:
            # Fetched per connection so rotated client certificates are used from then on.
            ctx = self.cluster.client_context() if tls is not None else None
            async with asyncio.timeout(timeout):
                transport, conn = await loop.create_connection(
                    factory,
                    self.host.address,
                    self.host.port,
                    ssl=ctx,
                    server_hostname=self.server_hostname if ctx is not None else None,
                )
            if tls is not None:
                try:
                    check_upstream_peer(tls, transport.get_extra_info("ssl_object"))
                except ssl.SSLError:
                    transport.abort()
                    raise
        except TimeoutError:
            self._connect_failed(waiter, f"connect timeout after {timeout:g}s", True)
            return
        except (OSError, ssl.SSLError, ValueError, TlsConfigError) as exc:
            self._connect_failed(waiter, _describe(exc), False)
            return
        finally:
            self.connecting -= 1
        if conn.closed:
            # Lost before it was counted as open (``on_closed`` did no accounting for it).
            self._connect_failed(waiter, "connection closed by the upstream", False)
            return
        self.connections.add(conn)
        self.cluster.on_connected(self.host)
        waiter.on_connection(conn)

    def _connect_failed(self, waiter: PoolWaiter, reason: str, timeout: bool) -> None:
        self.cluster.open_connections -= 1
        self.cluster.on_connect_failed(self.host, timeout)
        waiter.on_connect_failed(reason, timeout)

    def close(self) -> None:
        """Stop reusing connections; idle ones close now, busy ones after their response."""
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self.idle):
            conn.close()
        self.idle.clear()

    @property
    def busy(self) -> int:
        return len(self.connections) - len(self.idle)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)
