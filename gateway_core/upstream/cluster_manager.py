"""Control path: ``ClusterManager`` reconciles live clusters with a new snapshot's specs.

Keyed by cluster key (Envoy cluster manager, mitmproxy ``Servers.update``): an unchanged spec
keeps its ``Cluster`` object; a changed one is rebuilt with the surviving ``Host`` objects, so
outlier state, ejections and active-request counts carry over; a new cluster is warmed (its DNS
names resolved once) before the snapshot that uses it is published; a removed cluster is
stopped only after a drain delay, so in-flight requests finish on it. Upstream TLS contexts are
built here too, while clusters are built (``ClientContextStore``), never on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from gateway_core.snapshot import ClusterSpec
from gateway_core.upstream.client_tls import ClientContextStore
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.connector import Connector
from gateway_core.upstream.discovery import DnsResolver
from gateway_core.upstream.host import Host, HostKey
from gateway_core.upstream.lb.tables import Offload
from gateway_core.upstream.shared_hosts import OutcomeSink
from gateway_core.utils.clock import Clock
from gateway_core.utils.tasks import background

_log = logging.getLogger("gateway.clusters")

WARM_TIMEOUT = 5.0
"""A new cluster waits this long for its first DNS answers before going live anyway."""
RETIRE_DELAY = 30.0
"""Removed clusters keep serving in-flight requests this long before their pools close."""


class ClusterManager:
    def __init__(
        self,
        *,
        rng: random.Random,
        clock: Clock,
        resolver: DnsResolver,
        connector: Connector[Any],
        tls_store: ClientContextStore,
        h2_connector: Connector[Any] | None = None,
        retire_delay: float = RETIRE_DELAY,
        offload: Offload | None = None,
        follower: OutcomeSink | None = None,
        on_change: Callable[[Cluster], None] | None = None,
    ) -> None:
        """``connector`` opens HTTP/1.1 connections, ``h2_connector`` HTTP/2 ones; ``offload``
        builds hash tables off the loop (``lb/tables.py``). ``follower``: a worker's clusters
        (``Cluster``); ``on_change``: told of every host membership or health change of a
        cluster (the supervisor broadcasts them)."""
        self._offload = offload
        self._follower = follower
        self._on_change = on_change
        self._rng = rng
        self._clock = clock
        self._resolver = resolver
        self._connector = connector
        self._h2_connector = h2_connector
        self._tls_store = tls_store
        self._retire_delay = retire_delay
        self.clusters: dict[str, Cluster] = {}
        self._retiring: set[Cluster] = set()
        """Removed clusters waiting out the drain delay; ``close`` stops them at once."""

    def get(self, key: str) -> Cluster | None:
        return self.clusters.get(key)

    async def reconcile(self, specs: Mapping[str, ClusterSpec]) -> dict[str, Cluster]:
        """Build and warm the clusters of ``specs``; return the new map (not yet published)."""
        new: dict[str, Cluster] = {}
        started: list[Cluster] = []
        for key, spec in specs.items():
            old = self.clusters.get(key)
            if old is not None and old.spec == spec:
                new[key] = old
                continue
            cluster = Cluster(
                spec,
                rng=self._rng,
                clock=self._clock,
                resolver=self._resolver,
                connector=self._connector,
                tls_store=self._tls_store,
                h2_connector=self._h2_connector,
                existing=self._existing_hosts(spec, old),
                offload=self._offload,
                follower=self._follower,
            )
            cluster.on_change = self._on_change
            new[key] = cluster
            started.append(cluster)
        if started:
            await self._warm(started)
        return new

    def publish(self, new: dict[str, Cluster]) -> None:
        """Swap in ``new``; retire clusters that are gone or were replaced."""
        old = self.clusters
        self.clusters = new
        self._tls_store.retain(c.spec.tls for c in new.values() if c.spec.tls is not None)
        retired = [c for k, c in old.items() if new.get(k) is not c]
        if retired:
            background(self._retire(retired), name="retire clusters")

    async def close(self) -> None:
        """Stop every cluster, the live ones and those still draining after a reload (their
        health-check clients and pools would otherwise outlive the gateway)."""
        clusters, self.clusters = self.clusters, {}
        retiring, self._retiring = list(self._retiring), set()
        stopping = [*clusters.values(), *retiring]
        await asyncio.gather(*(c.stop() for c in stopping), return_exceptions=True)

    @staticmethod
    def _existing_hosts(spec: ClusterSpec, old: Cluster | None) -> dict[HostKey, Host]:
        """Hosts of the previous version of this cluster: their state carries over."""
        return {h.key: h for h in old.hosts} if old is not None else {}

    async def _warm(self, clusters: list[Cluster]) -> None:
        tasks = [asyncio.ensure_future(c.start()) for c in clusters]
        done, pending = await asyncio.wait(tasks, timeout=WARM_TIMEOUT)
        for task in pending:
            _log.warning("cluster warming is taking longer than %.0fs; going live", WARM_TIMEOUT)
            task.add_done_callback(_log_failure)
        for task in done:
            _log_failure(task)

    async def _retire(self, clusters: list[Cluster]) -> None:
        self._retiring.update(clusters)
        await asyncio.sleep(self._retire_delay)
        due = [c for c in clusters if c in self._retiring]  # close() may have stopped them
        self._retiring.difference_update(due)
        await asyncio.gather(*(c.stop() for c in due), return_exceptions=True)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("cluster start failed", exc_info=task.exception())
