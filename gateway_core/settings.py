"""Control path: process settings of one gateway (CLI flags plus role defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway_core.snapshot import (
    NO_LOCALITY,
    Locality,
    NodeInfo,
    frozen_labels,
    topology_labels,
)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    tier: str
    config_paths: tuple[str, ...]
    admin_address: tuple[str, int] = ("127.0.0.1", 15000)
    cluster_name: str = ""
    locality: Locality = NO_LOCALITY
    bind_address: str = "0.0.0.0"
    cert_dir: str = "certs/lab"
    labels: dict[str, str] = field(default_factory=dict)
    access_log: str = "-"
    xff_trusted_hops: int = 0
    """Trust X-Forwarded-* from this many proxies in front (Tier-2 behind Tier-1: 1)."""
    header_timeout: float = 10.0
    """Whole request head must arrive within this time (slowloris guard); 408 after."""
    idle_timeout: float = 60.0
    """Keep-alive connections idle this long are closed."""
    stream_idle_timeout: float = 300.0
    """A stream with no progress for this long ends (Envoy: 5 min): 504 UT when the upstream is
    silent, 408 SI when the client stops sending its body."""
    health_path: str = "/healthz/ready"
    """Answered on every data listener with 200 (ready) or 503 (starting/draining); '' disables."""
    dns_servers: tuple[tuple[str, int], ...] = ()
    spillover: bool = False
    dns_refresh_min: float = 5.0
    dns_refresh_max: float = 300.0
    sticky_secret: bytes = b""
    """HMAC key for sticky-session cookies; replicas must share it (empty: random per process)."""
    drain_propagation: float = 5.0
    """After SIGTERM: readiness fails at once, listeners keep accepting this long."""
    drain_deadline: float = 25.0
    """In-flight requests get this long to finish after listeners close."""
    watch_interval: float = 1.0
    """How often config and certificate files are checked for changes."""
    log_level: str = "info"
    tracing_endpoint: str = ""
    """OTLP/HTTP traces URL (``http://collector:4318/v1/traces``); empty: no tracer, trace
    fields pass through untouched (docs/tracing.md)."""
    tracing_sampling: float = 1.0
    """Percent of requests without a caller's sampling decision that are sampled (Istio's
    ``sampling``, default 1)."""
    tracing_queue_size: int = 2048
    """Spans waiting for export at most; more are dropped and counted."""
    tracing_flush_interval: float = 5.0
    """Seconds between span exports (a full batch of 512 goes at once)."""
    rng_seed: int | None = None

    def node(self) -> NodeInfo:
        labels = {**topology_labels(self.locality), **self.labels}
        if self.cluster_name:
            labels.setdefault("topology.istio.io/cluster", self.cluster_name)
        return NodeInfo(
            tier=self.tier,
            cluster_name=self.cluster_name,
            locality=self.locality,
            bind_address=self.bind_address,
            cert_dir=self.cert_dir,
            spillover=self.spillover,
            labels=frozen_labels(labels),
            dns_refresh_min=self.dns_refresh_min,
            dns_refresh_max=max(self.dns_refresh_min, self.dns_refresh_max),
        )
