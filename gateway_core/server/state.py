"""Control path: ``GatewayRuntime``, the only place the active snapshot is replaced.

``apply`` builds and warms new clusters, reconciles listeners, then publishes the snapshot and
the cluster map in two consecutive statements with no ``await`` between them: on one event loop
no request can observe one without the other. In-flight requests keep the objects they read.
"""

from __future__ import annotations

import logging
import os
import random
from typing import TYPE_CHECKING, Any

from gateway_core.observability.access_log import AccessLog
from gateway_core.observability.metrics import ClusterSample, GatewayMetrics
from gateway_core.observability.tracing import Tracer
from gateway_core.settings import GatewaySettings
from gateway_core.snapshot import NodeInfo, Snapshot
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.cluster_manager import ClusterManager

if TYPE_CHECKING:
    from gateway_core.proxy.context import ExchangeOutcome
    from gateway_core.server.listeners import ListenerSet

_log = logging.getLogger("gateway.state")

_NO_FLAGS: list[str] = []

EMPTY_SNAPSHOT = Snapshot(version="", node=NodeInfo(), listeners=(), route_tables={}, clusters={})


class GatewayRuntime:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        metrics: GatewayMetrics,
        access_log: AccessLog,
        clusters: ClusterManager,
        rng: random.Random,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.access_log = access_log
        self.cluster_manager = clusters
        self.rng = rng
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.clusters: dict[str, Cluster] = {}
        self.connections: set[Any] = set()
        """Open client connections: ``DownstreamProtocol`` (HTTP/1.1) and ``H2Downstream``."""
        self.listeners: ListenerSet | None = None
        self.ready = False
        self.draining = False
        self.last_error = ""
        self.sticky_key = settings.sticky_secret or os.urandom(32)
        self.tracer: Tracer | None = None
        """Set by the process when ``--tracing-otlp-endpoint`` is given."""
        self.health_path = settings.health_path.encode() if settings.health_path else b"\x00"
        metrics.clusters_source = self.cluster_samples
        metrics.downstream_cx_active = lambda: len(self.connections)
        metrics.draining = lambda: self.draining

    async def apply(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` live. Raises (and changes nothing visible) if listeners fail."""
        new_clusters = await self.cluster_manager.reconcile(snapshot.clusters)
        assert self.listeners is not None
        try:
            await self.listeners.reconcile(snapshot.listeners)
        except OSError:
            for key, cluster in new_clusters.items():
                if self.clusters.get(key) is not cluster:
                    await cluster.stop()
            raise
        self.snapshot = snapshot
        self.clusters = new_clusters
        self.cluster_manager.publish(new_clusters)
        self.metrics.config_version = snapshot.version
        for warning in snapshot.warnings:
            _log.warning("%s", warning)

    def observe(self, ex: ExchangeOutcome, now: float) -> None:
        """Per-request bookkeeping: metrics and the access-log line (``now``: loop time)."""
        duration = now - ex.start
        flags = [f.value for f in ex.flags] if ex.flags else _NO_FLAGS
        self.metrics.record_request(ex.status, duration, flags)
        if self.tracer is not None:
            self.tracer.finish(ex, now)
        log = self.access_log
        if log.enabled:
            req = ex.req
            host = ex.host
            log.record(
                method=req.method,
                authority=req.authority,
                path=req.target,
                status=ex.status,
                flags=",".join(flags) or "-",
                duration=duration,
                upstream_host=host.label if host is not None else "-",
                cluster=ex.target.cluster if ex.target is not None else "-",
                route=ex.entry.name if ex.entry is not None else "-",
                attempts=ex.attempts,
                bytes_received=ex.bytes_received,
                bytes_sent=ex.bytes_sent,
                request_id=ex.request_id or b"-",
                client=req.source_ip,
            )

    def cluster_samples(self) -> list[ClusterSample]:
        out = []
        for key, c in sorted(self.clusters.items()):
            s, r = c.stats, c.resources
            outlier = c.outlier.stats() if c.outlier is not None else None
            out.append(
                ClusterSample(
                    key=key,
                    rq={"2xx": s.rq_2xx, "3xx": s.rq_3xx, "4xx": s.rq_4xx, "5xx": s.rq_5xx},
                    retries=s.retries,
                    overflow=r.refused_requests,
                    cx_overflow=r.connections.overflow,
                    retry_overflow=r.retries.overflow,
                    connect_fail=s.connect_fail,
                    connect_timeout=s.connect_timeout,
                    cx_active=r.connections.count,
                    rq_active=r.requests.count,
                    rq_pending=r.pending_requests.count,
                    ejections_active=outlier.ejections_active if outlier is not None else 0,
                    ejections_total=outlier.ejections_total if outlier is not None else 0,
                    hosts=len(c.hosts),
                    healthy_hosts=sum(1 for h in c.hosts if h.healthy),
                    extra_data=s.extra_data,
                )
            )
        return out
