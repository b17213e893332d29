"""Data path: ``ClusterPools``, the connection pools of one cluster and what they share.

Pools are keyed by ``(host, SNI)``. Without a configured ``sni`` the SNI is the request's
authority (Istio's default), which clients choose, so the map is bounded: at most
``MAX_POOLS_PER_HOST`` pools per host (the least recently used one is closed to make room,
preferring one with no queued request), and a pool with no connection, attempt or queued request
for ``EMPTY_POOL_EXPIRY`` seconds is dropped by one sweep timer that only runs while such pools
exist.

Across its pools it owns the cluster's ``ResourceManager`` view of connections: when a
connection slot frees on one host it wakes the oldest request queued on any host of the
cluster, and when a request has to queue while another host holds an idle connection, that idle
connection is closed so its slot serves the request (an idle slot never makes a request wait).
"""

from __future__ import annotations

import asyncio
from typing import Generic, cast

from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.connector import C, Connector
from gateway_core.upstream.host import Host, HostKey
from gateway_core.upstream.mux_pool import MuxConnection, MuxHostPool
from gateway_core.upstream.pool import HostPool, PoolEvents, PoolGroup
from gateway_core.upstream.resources import ResourceManager
from gateway_core.utils.clock import Scheduler, Timer

MAX_POOLS_PER_HOST = 64
"""Pools (distinct SNI values) kept per host."""
EMPTY_POOL_EXPIRY = 60.0
"""Seconds an empty pool is kept before it is dropped."""

PoolKey = tuple[HostKey, str | None]


class ClusterPools(Generic[C]):
    """Implements ``PoolGroup`` for the pools it creates."""

    def __init__(
        self,
        resources: ResourceManager,
        limits: PoolLimits,
        connector: Connector[C],
        events: PoolEvents,
        tls: ClientTlsSlot | None,
        *,
        loop: Scheduler | None = None,
        max_per_host: int = MAX_POOLS_PER_HOST,
        expiry: float = EMPTY_POOL_EXPIRY,
        max_streams: int | None = None,
    ) -> None:
        """``max_streams``: the pools are multiplexed (HTTP/2), at most this many streams on
        one connection (``MuxHostPool``)."""
        self.resources = resources
        self.limits = limits
        self.connector = connector
        self.events = events
        self.tls = tls
        self.max_per_host = max_per_host
        self.expiry = expiry
        self.max_streams = max_streams
        self.pools: dict[PoolKey, HostPool[C]] = {}
        self._by_host: dict[HostKey, dict[str | None, HostPool[C]]] = {}
        self._waiting: dict[HostPool[C], None] = {}
        """Pools that queued a waiter (insertion-ordered; cleaned lazily)."""
        self._tickets = 0
        self._uses = 0
        self._sweep: Timer | None = None
        self._loop = loop
        self._closed = False

    @property
    def loop(self) -> Scheduler:
        loop = self._loop
        if loop is None:
            # Fetched once: ``asyncio.get_running_loop`` makes a getpid system call each time.
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def __len__(self) -> int:
        return len(self.pools)

    # -- the data path's lookup ----------------------------------------------------------------
    def get(self, host: Host, sni: str | None) -> HostPool[C]:
        pool = self.pools.get((host.key, sni))
        if pool is None:
            if self._closed:
                # A request still on a stopped cluster: served, but nothing is kept for later.
                pool = self._new_pool(host, sni)
                pool.close("cluster stopped")
                return pool
            pool = self._create(host, sni)
        self._uses = uses = self._uses + 1
        pool.last_use = uses
        return pool

    def _create(self, host: Host, sni: str | None) -> HostPool[C]:
        mine = self._by_host.setdefault(host.key, {})
        if len(mine) >= self.max_per_host:
            victim = min(mine.values(), key=lambda p: (bool(p.waiters), p.last_use))
            self._drop(victim, "connection pool evicted (too many SNI values)")
        pool = self._new_pool(host, sni)
        mine[sni] = pool
        self.pools[(host.key, sni)] = pool
        return pool

    def _new_pool(self, host: Host, sni: str | None) -> HostPool[C]:
        if self.max_streams is None:
            return HostPool(self, host, self.tls, sni)
        group = cast(PoolGroup[MuxConnection], self)  # a multiplexed pool map holds MuxConnection
        pool = MuxHostPool(group, host, self.tls, sni, max_streams=self.max_streams)
        return cast(HostPool[C], pool)

    def _drop(self, pool: HostPool[C], reason: str) -> None:
        key = pool.host.key
        del self.pools[(key, pool.server_hostname)]
        mine = self._by_host[key]
        del mine[pool.server_hostname]
        if not mine:
            del self._by_host[key]
        self._waiting.pop(pool, None)
        pool.close(reason)

    # -- control path ----------------------------------------------------------------------------
    def retain_hosts(self, keys: set[HostKey]) -> None:
        """Membership changed: close the pools of hosts that left."""
        for pool in [p for p in self.pools.values() if p.host.key not in keys]:
            self._drop(pool, "upstream host removed")

    def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for pool in list(self.pools.values()):
            self._drop(pool, "connection pool closed")

    # -- PoolGroup -------------------------------------------------------------------------------
    def ticket(self) -> int:
        self._tickets += 1
        return self._tickets

    def waiting(self, pool: HostPool[C]) -> None:
        self._waiting[pool] = None
        # An idle connection elsewhere holds a slot nobody uses: give it to this request.
        for other in self.pools.values():
            if other is not pool and other.close_one_idle():
                return

    def slot_freed(self, pool: HostPool[C]) -> None:
        if not self._waiting:
            return
        connections = self.resources.connections
        while connections.can_create():
            oldest = self._oldest_waiting()
            if oldest is None:
                return
            oldest.wake_one()

    def _oldest_waiting(self) -> HostPool[C] | None:
        best: HostPool[C] | None = None
        for pool in list(self._waiting):
            if not pool.waiters:
                del self._waiting[pool]
            elif best is None or pool.waiters[0][0] < best.waiters[0][0]:
                best = pool
        return best

    def emptied(self, pool: HostPool[C]) -> None:
        if self._sweep is None and self.pools.get((pool.host.key, pool.server_hostname)) is pool:
            self._sweep = self.loop.call_later(self.expiry, self._expire)

    def _expire(self) -> None:
        """Drop pools empty for ``expiry``; re-arm for the next one due."""
        self._sweep = None
        now = self.loop.time()
        due: float | None = None
        for pool in list(self.pools.values()):
            since = pool.empty_since
            if since is None or not pool.is_empty:
                continue
            if now - since >= self.expiry:
                self._drop(pool, "connection pool expired")
            elif due is None or since < due:
                due = since
        if due is not None:
            self._sweep = self.loop.call_later(max(due + self.expiry - now, 0.001), self._expire)
