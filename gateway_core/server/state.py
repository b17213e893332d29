"""Control path: ``GatewayRuntime``, the only place the active snapshot is replaced.

``apply`` builds and warms new clusters, reconciles listeners, then publishes the snapshot and
the cluster map in two consecutive statements with no ``await`` between them: on one event loop
no request can observe one without the other. In-flight requests keep the objects they read.
"""

from __future__ import annotations

import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway_core.observability.access_log import AccessLog
from gateway_core.observability.istio_metrics import grpc_status_label
from gateway_core.observability.metrics import ClusterSample, GatewayMetrics
from gateway_core.observability.tracing import Tracer
from gateway_core.proxy.grpc import is_grpc
from gateway_core.proxy.token_bucket import Limiter, RateLimits
from gateway_core.routing.ratelimit import RateLimitSpec
from gateway_core.security.jwks_store import JwksStore, jwks_uris
from gateway_core.settings import GatewaySettings
from gateway_core.snapshot import NodeInfo, Snapshot
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.cluster_manager import ClusterManager
from gateway_core.upstream.host import Host

if TYPE_CHECKING:
    from gateway_core.proxy.outcome import ExchangeOutcome
    from gateway_core.server.listeners import ListenerSet

_log = logging.getLogger("gateway.state")

_NO_FLAGS: list[str] = []

PublishHook = Callable[[dict[str, Cluster]], Awaitable[None]]


class RolloutError(Exception):
    """A new version could not be made live in every worker (the previous one stays)."""


EMPTY_SNAPSHOT = Snapshot(version="", node=NodeInfo(), listeners=(), route_tables={}, clusters={})

RECENT_ERRORS = 50
RecentError = tuple[float, int, list[str], bytes, bytes, bytes, Host | None, str | None, str | None]
"""One answered request with response flags or a 5xx: (loop time, status, flags, method,
authority, path without the query, upstream host, cluster, route): one tuple per error."""


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """The last configuration load (start, file change, SIGHUP or ``POST /reload``)."""

    at: float
    """Wall-clock time (Unix seconds)."""
    accepted: bool
    version: str
    """The version serving after it (the previous one when rejected)."""
    error: str = ""
    """The rejection's diagnostics, one per line, with their file locations."""
    changed: bool = True
    """False when the files compiled to the version already serving."""


class GatewayRuntime:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        metrics: GatewayMetrics,
        access_log: AccessLog,
        clusters: ClusterManager,
        rng: random.Random,
        jwt_keys: JwksStore | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.access_log = access_log
        self.cluster_manager = clusters
        self.rng = rng
        self.jwt_keys = jwt_keys if jwt_keys is not None else JwksStore()
        """Keys from ``jwksUri``: fetched by the control path, read by the JWT filter."""
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.clusters: dict[str, Cluster] = {}
        self.limits = RateLimits(settings.workers)
        self.rate_limits: dict[str, Limiter] = {}
        """Token buckets by ``RateLimitSpec.key``: they outlive a reload that keeps the limit."""
        self.connections: set[Any] = set()
        """Open client connections: ``DownstreamProtocol`` (HTTP/1.1) and ``H2Downstream``."""
        self.listeners: ListenerSet | None = None
        self.ready = False
        self.draining = False
        self.last_error = ""
        self.last_reload: ReloadResult | None = None
        self.recent_errors: deque[RecentError] = deque(maxlen=RECENT_ERRORS)
        """The last requests answered with response flags or a 5xx (admin dashboard)."""
        self.workers_info: Callable[[], list[dict[str, object]]] | None = None
        """With ``--workers N``: each worker's pid and the version it serves (``/config_dump``)."""
        self.sticky_key = settings.sticky_secret or os.urandom(32)
        self.tracer: Tracer | None = None
        """Set by the process when ``--tracing-otlp-endpoint`` is given."""
        self.health_path = settings.health_path.encode() if settings.health_path else b"\x00"
        metrics.clusters_source = self.cluster_samples
        metrics.downstream_cx_active = lambda: len(self.connections)
        metrics.draining = lambda: self.draining
        metrics.access_log_losses = lambda: (access_log.dropped_lines, access_log.write_errors)
        metrics.rate_limits = self.limits.samples

    async def apply(self, snapshot: Snapshot, before_publish: PublishHook | None = None) -> None:
        """Make ``snapshot`` live. Raises (and changes nothing visible) if listeners fail, or
        if ``before_publish`` (a supervisor rolling the version out to its workers; a worker
        adopting the supervisor's host state) raises ``RolloutError``."""
        new_clusters = await self.cluster_manager.reconcile(snapshot.clusters)
        assert self.listeners is not None
        listeners_done = False
        try:
            await self.listeners.reconcile(snapshot.listeners)
            listeners_done = True
            if before_publish is not None:
                await before_publish(new_clusters)
        except (OSError, RolloutError):
            if listeners_done:
                await self.listeners.reconcile(self.snapshot.listeners)
            for key, cluster in new_clusters.items():
                if self.clusters.get(key) is not cluster:
                    await cluster.stop()
            raise
        rate_limits = self.limits.publish(_rate_limit_specs(snapshot))
        # New key sets are fetched (bounded wait) before the snapshot that needs them goes live.
        await self.jwt_keys.reconcile(jwks_uris(snapshot.gateway_filters))
        self.snapshot = snapshot
        self.clusters = new_clusters
        self.rate_limits = rate_limits
        self.cluster_manager.publish(new_clusters)
        self.metrics.config_version = snapshot.version
        self.metrics.istio.reset_destinations()
        for warning in snapshot.warnings:
            _log.warning("%s", warning)

    def observe(self, ex: ExchangeOutcome, now: float) -> None:
        """Per-request bookkeeping: metrics and the access-log line (``now``: loop time)."""
        duration = now - ex.start
        flags = [f.value for f in ex.flags] if ex.flags else _NO_FLAGS
        self.metrics.record_request(ex.status, duration, flags)
        if flags or ex.status >= 500:
            target, entry = ex.target, ex.entry
            self.recent_errors.append(
                (
                    now,
                    ex.status,
                    flags,
                    ex.req.method,
                    ex.req.authority,
                    ex.req.path,
                    ex.host,
                    target.cluster if target is not None else None,
                    entry.name if entry is not None else None,
                )
            )
        flags_text = ",".join(flags) or "-"
        self._record_istio(ex, duration, flags_text)
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
                flags=flags_text,
                duration=duration,
                upstream_host=host.label if host is not None else "-",
                cluster=ex.target.cluster if ex.target is not None else "-",
                route=ex.entry.name if ex.entry is not None else "-",
                attempts=ex.attempts,
                bytes_received=ex.bytes_received,
                bytes_sent=ex.bytes_sent,
                request_id=ex.request_id or b"-",
                client=req.source_ip,
                protocol=ex.protocol,
                upstream_time=ex.response_at - ex.start if ex.response_at else None,
                trace_id=ex.trace_id,
                x_forwarded_for=req.headers.get(b"x-forwarded-for", b""),
                user_agent=req.headers.get(b"user-agent", b""),
            )

    def record_reload(self, accepted: bool, error: str = "", *, changed: bool = True) -> None:
        """Remember the last configuration load's result for the admin dashboard."""
        self.last_reload = ReloadResult(
            at=self.metrics.wall_clock(),
            accepted=accepted,
            version=self.snapshot.version,
            error=error,
            changed=changed,
        )

    def _record_istio(self, ex: ExchangeOutcome, duration: float, flags: str) -> None:
        if ex.req.path == self.health_path:
            return  # readiness probes are not traffic (Istio answers them on port 15021)
        istio = self.metrics.istio
        cluster = ex.cluster
        dest = istio.destination(cluster.spec if cluster is not None else None, ex.host)
        status = ex.status
        if is_grpc(ex.req):
            code = grpc_status_label(ex.grpc_status, status)
            istio.record_request(
                dest, "grpc", status, code, flags, duration * 1000.0, ex.bytes_received,
                ex.bytes_sent,
            )  # fmt: skip
        else:
            istio.record_request(
                dest, "http", status, None, flags, duration * 1000.0, ex.bytes_received,
                ex.bytes_sent,
            )  # fmt: skip
        if status == 101 and ex.upgrade:  # a WebSocket tunnel closed
            tunnel = istio.tunnel_series(dest)
            tunnel.closed += 1
            tunnel.sent += ex.bytes_sent
            tunnel.received += ex.bytes_received

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


def _rate_limit_specs(snapshot: Snapshot) -> list[RateLimitSpec]:
    """Every rate limit of ``snapshot``: gateway-wide ones, then those of every route."""
    specs = [f for f in snapshot.gateway_filters if isinstance(f, RateLimitSpec)]
    for table in snapshot.route_tables.values():
        for vhost in table.virtual_hosts:
            for entry in vhost.routes:
                specs += entry.rate_limits
    return specs
