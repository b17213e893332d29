"""Control→data contract: the immutable routing snapshot produced by ``compile_snapshot``.

Everything here is a frozen dataclass built once per configuration version. The data path reads
a snapshot reference once per request and never mutates it; a reload builds a new snapshot and
swaps it with one assignment. Runtime state (hosts, connection pools, outlier counters) lives in
``gateway_core.upstream`` keyed by the names defined here:

* cluster key ``outbound|<port>|<subset>|<host>`` (Istio ``BuildSubsetKey``),
* route name ``<namespace>/<virtualservice>/http[<i>]``,
* host key ``(address, port)`` inside a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from gateway_core.routing.route_table import RouteTable


@dataclass(frozen=True, slots=True, order=True)
class Locality:
    """``region/zone/subzone``; empty parts are allowed (``us-west1`` alone is a region)."""

    region: str = ""
    zone: str = ""
    subzone: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Locality:
        if not text:
            return cls()
        parts = [p for p in text.strip("/").split("/")]
        parts += [""] * (3 - len(parts))
        return cls(parts[0], parts[1], parts[2])

    def __str__(self) -> str:
        return "/".join(p for p in (self.region, self.zone, self.subzone) if p) or ""


EMPTY_LABELS: Mapping[str, str] = MappingProxyType({})
NO_LOCALITY = Locality()


def frozen_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(sorted(labels.items())))


TOPOLOGY_REGION = "topology.kubernetes.io/region"
TOPOLOGY_ZONE = "topology.kubernetes.io/zone"
TOPOLOGY_SUBZONE = "topology.istio.io/subzone"


def topology_labels(locality: Locality) -> dict[str, str]:
    """The well-known labels Istio derives from a locality (``failoverPriority`` compares them)."""
    out = {}
    for key, value in (
        (TOPOLOGY_REGION, locality.region),
        (TOPOLOGY_ZONE, locality.zone),
        (TOPOLOGY_SUBZONE, locality.subzone),
    ):
        if value:
            out[key] = value
    return out


class Discovery(StrEnum):
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One configured endpoint. With DNS discovery ``address`` is a name that resolves to hosts
    which inherit the weight, locality, labels and priority."""

    address: str
    port: int
    weight: int = 1
    locality: Locality = NO_LOCALITY
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS, hash=False)
    priority: int = 0
    locality_weight: int = 0
    """Weight of this endpoint's locality inside its priority (``distribute``); 0 = not weighted."""


class LbKind(StrEnum):
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"
    RANDOM = "RANDOM"
    RING_HASH = "RING_HASH"
    MAGLEV = "MAGLEV"
    PASSTHROUGH = "PASSTHROUGH"


class HashKeyKind(StrEnum):
    HEADER = "header"
    COOKIE = "cookie"
    SOURCE_IP = "source_ip"
    QUERY_PARAMETER = "query_parameter"


@dataclass(frozen=True, slots=True)
class HashKeySpec:
    kind: HashKeyKind
    name: str = ""
    cookie_path: str | None = None
    cookie_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class LbPolicy:
    kind: LbKind = LbKind.LEAST_REQUEST
    hash_key: HashKeySpec | None = None
    ring_size: int = 1024
    maglev_table_size: int = 65537


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """Istio ``OutlierDetection`` translated to Envoy's semantics (defaults filled in)."""

    consecutive_5xx: int = 5
    consecutive_gateway: int = 0
    consecutive_local_origin: int = 5
    split_local_origin: bool = False
    interval: float = 10.0
    base_ejection_time: float = 30.0
    max_ejection_time: float = 300.0
    max_ejection_percent: int = 10
    min_health_percent: int = 0


UNLIMITED = 2**32 - 1


@dataclass(frozen=True, slots=True)
class PoolLimits:
    """``connectionPool`` settings; Istio sets every breaker to 2^32-1 by default."""

    max_connections: int = UNLIMITED
    max_pending_requests: int = UNLIMITED
    max_requests: int = UNLIMITED
    max_retries: int = UNLIMITED
    max_requests_per_connection: int = 0
    connect_timeout: float = 10.0
    idle_timeout: float = 3600.0


class UpstreamProtocol(StrEnum):
    """What the gateway speaks to a cluster's hosts (Istio's choice for the port)."""

    HTTP1 = "HTTP/1.1"
    HTTP2 = "HTTP/2"
    CLIENT = "client"
    """``useClientProtocol``: the protocol the client used (Envoy's downstream protocol)."""


class UpstreamTlsMode(StrEnum):
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """Client-side TLS towards the upstream (DestinationRule ``trafficPolicy.tls``)."""

    mode: UpstreamTlsMode
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    sni: str | None = None
    subject_alt_names: tuple[str, ...] = ()
    insecure_skip_verify: bool = False


@dataclass(frozen=True, slots=True)
class GrpcHealthCheckPolicy:
    """``grpc.health.v1.Health/Check`` with ``service``; ``authority`` overrides the call's
    ``:authority`` (default: the TLS server name, else the endpoint ``address:port``)."""

    service_name: str = ""
    authority: str | None = None


@dataclass(frozen=True, slots=True)
class HealthCheckPolicy:
    """An HTTP GET of ``path`` (``expected_statuses`` pass), or, with ``grpc``, a gRPC health
    call that passes on ``SERVING``; the counting is the same for both."""

    path: str = "/healthz/ready"
    interval: float = 5.0
    timeout: float = 1.0
    unhealthy_threshold: int = 2
    healthy_threshold: int = 2
    expected_statuses: tuple[int, ...] = (200,)
    host: str | None = None
    grpc: GrpcHealthCheckPolicy | None = None

    def describe(self) -> str:
        """``GET /healthz/ready`` or ``grpc.health.v1 Check 'svc'`` (logs, task names)."""
        if self.grpc is not None:
            return f"grpc.health.v1 Check {self.grpc.service_name!r}"
        return f"GET {self.path}"


@dataclass(frozen=True, slots=True)
class StickyPolicy:
    cookie_name: str
    cookie_path: str = "/"
    cookie_ttl: float | None = None
    target_subset: bool = False
    """True: the cookie names the destination (subset cluster) of the route; False: the host."""


@dataclass(frozen=True, slots=True)
class LocalityPolicy:
    """What the compiler decided from ``localityLbSetting`` (for explain and runtime)."""

    failover_enabled: bool = False
    locality_weighted: bool = False


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """One upstream cluster: a service host, port and subset, with its endpoints and policies."""

    key: str
    service_host: str
    port: int
    subset: str | None
    discovery: Discovery
    endpoints: tuple[EndpointSpec, ...]
    lb: LbPolicy = LbPolicy()
    outlier: OutlierPolicy | None = None
    limits: PoolLimits = PoolLimits()
    tls: UpstreamTls | None = None
    health_check: HealthCheckPolicy | None = None
    sticky: StickyPolicy | None = None
    locality: LocalityPolicy = LocalityPolicy()
    panic_threshold: int = 50
    """Percent; Envoy's 50 without outlier detection, ``minHealthPercent`` (default 0) with it."""
    spillover: bool = False
    """A weighted route moves this destination's share to the others when it has no healthy host."""
    dns_refresh_min: float = 5.0
    dns_refresh_max: float = 300.0
    protocol: UpstreamProtocol = UpstreamProtocol.HTTP1
    max_concurrent_streams: int = UNLIMITED
    """Streams one HTTP/2 connection carries at once (also bounded by the host's SETTINGS)."""
    service_entry: tuple[str, str] | None = None
    """``(namespace, name)`` of the ServiceEntry that defines ``service_host``, if any (Istio's
    workload and service namespace in the standard metrics' destination labels)."""


class ListenerProtocol(StrEnum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"


class ServerTlsMode(StrEnum):
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


@dataclass(frozen=True, slots=True)
class TlsServerSpec:
    """Downstream TLS of one Gateway server (paths resolved, files read by ``server/tls.py``)."""

    mode: ServerTlsMode
    cert_file: str
    key_file: str
    ca_file: str | None = None
    min_version: str = "TLSV1_2"
    max_version: str = "TLS_AUTO"
    cipher_suites: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One Gateway server on a listener: its hosts (SNI names for HTTPS) and route table."""

    name: str
    hosts: tuple[str, ...]
    route_table: str
    tls: TlsServerSpec | None = None


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    name: str
    bind: str
    port: int
    protocol: ListenerProtocol
    servers: tuple[ServerSpec, ...]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Who this gateway is; an input to the pure compile step."""

    tier: str = "tier2"
    cluster_name: str = ""
    locality: Locality = NO_LOCALITY
    bind_address: str = "0.0.0.0"
    cert_dir: str = "certs"
    spillover: bool = False
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_LABELS, hash=False)
    dns_refresh_min: float = 5.0
    dns_refresh_max: float = 300.0
    """DNS answers are re-resolved after their TTL, clamped to these bounds (seconds)."""
    gateway_id: str = ""
    """The loop guard's id of this gateway (empty: no loop guard)."""
    max_gateway_hops: int = 8
    hop_secret: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    node: NodeInfo
    listeners: tuple[ListenerSpec, ...]
    route_tables: Mapping[str, RouteTable]
    clusters: Mapping[str, ClusterSpec]
    warnings: tuple[str, ...] = ()
    gateway_filters: tuple[object, ...] = ()
    """Gateway-wide filters, run for every request before route selection, in order
    (``proxy/filters.run_gateway_chain``); each element is a compiled settings object whose type
    picks its handler."""
