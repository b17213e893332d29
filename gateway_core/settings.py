"""Control path: process settings of one gateway (CLI flags plus role defaults)."""

from __future__ import annotations

import os
import secrets
import socket
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
    admin_token_file: str = ""
    """Bearer token for the admin's mutating calls (POST /reload, /drain); '' means none."""
    admin_allow_unauthenticated_loopback: bool = False
    """Let loopback callers make mutating admin calls without the token (the lab sets it)."""
    cluster_name: str = ""
    locality: Locality = NO_LOCALITY
    bind_address: str = "0.0.0.0"
    cert_dir: str = "certs/lab"
    labels: dict[str, str] = field(default_factory=dict)
    workload_name: str = ""
    """This gateway's workload in Istio's metrics (``source_workload``); '' = <tier>-gateway."""
    namespace: str = ""
    """This gateway's namespace in Istio's metrics (``source_workload_namespace``)."""
    access_log: str = "-"
    access_log_format: str = "json"
    """``json`` or ``text`` (Istio's default Envoy text format)."""
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
    workers: int = 1
    """Worker processes (``--workers``); 1 runs one process without a supervisor. Each worker
    has its own rate-limit buckets with a 1/N share of every limit
    (``proxy/token_bucket.worker_share``)."""
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
    gateway_id: str = ""
    """This gateway's loop-guard id (``--gateway-id``); empty: ``<hostname>-<8 random hex
    digits>``, drawn once when the settings are made, so every worker shares it."""
    max_gateway_hops: int = 8
    """Requests that already passed this many gateways are refused with 508."""
    hop_secret: bytes = field(default=b"", repr=False)
    """HMAC key of the loop-guard tag; gateways that share it trust each other's hop entries
    from untrusted peers (empty: random, drawn once like ``gateway_id``)."""

    def __post_init__(self) -> None:
        if not self.gateway_id:
            object.__setattr__(self, "gateway_id", default_gateway_id())
        if not self.hop_secret:
            object.__setattr__(self, "hop_secret", os.urandom(32))

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
            gateway_id=self.gateway_id,
            max_gateway_hops=self.max_gateway_hops,
            hop_secret=self.hop_secret,
        )


def default_gateway_id() -> str:
    """``<hostname>-<8 random hex digits>``: unique per start, not guessable by clients."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"
