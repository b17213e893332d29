"""Control path: Istio ``DestinationRule`` (destination_rule.proto) with every traffic policy."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from gateway_core.config._base import ApiModel, Duration
from gateway_core.config.common import PortSelector


class SimpleLB(StrEnum):
    UNSPECIFIED = "UNSPECIFIED"
    LEAST_CONN = "LEAST_CONN"
    RANDOM = "RANDOM"
    PASSTHROUGH = "PASSTHROUGH"
    ROUND_ROBIN = "ROUND_ROBIN"
    LEAST_REQUEST = "LEAST_REQUEST"


class HTTPCookie(ApiModel):
    name: str = Field(min_length=1)
    path: str | None = None
    ttl: Duration | None = None
    attributes: list[dict[str, str]] = Field(default_factory=list)


class RingHash(ApiModel):
    minimum_ring_size: int | None = Field(default=None, ge=0)


class MagLev(ApiModel):
    table_size: int | None = Field(default=None, ge=0)


class ConsistentHashLB(ApiModel):
    """Exactly one hash key; ring hash (default) or maglev."""

    http_header_name: str | None = None
    http_cookie: HTTPCookie | None = None
    use_source_ip: bool | None = None
    http_query_parameter_name: str | None = None
    ring_hash: RingHash | None = None
    maglev: MagLev | None = None
    minimum_ring_size: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_key(self) -> ConsistentHashLB:
        keys = [
            n
            for n in (
                "http_header_name",
                "http_cookie",
                "use_source_ip",
                "http_query_parameter_name",
            )
            if getattr(self, n) not in (None, False)
        ]
        if len(keys) > 1:
            raise ValueError("only one hash key may be set")
        if self.ring_hash is not None and self.maglev is not None:
            raise ValueError("only one of ringHash or maglev may be set")
        return self


class LocalityDistribute(ApiModel):
    from_: str = Field(alias="from")
    to: dict[str, int] = Field(default_factory=dict)


class LocalityFailover(ApiModel):
    from_: str = Field(alias="from")
    to: str


class LocalityLoadBalancerSetting(ApiModel):
    distribute: list[LocalityDistribute] = Field(default_factory=list)
    failover: list[LocalityFailover] = Field(default_factory=list)
    failover_priority: list[str] = Field(default_factory=list)
    enabled: bool | None = None


class WarmupConfiguration(ApiModel):
    duration: Duration
    minimum_percent: float | None = None
    aggression: float | None = None


class LoadBalancerSettings(ApiModel):
    simple: SimpleLB | None = Field(default=None, strict=False)
    consistent_hash: ConsistentHashLB | None = None
    locality_lb_setting: LocalityLoadBalancerSetting | None = None
    warmup_duration_secs: Duration | None = None
    warmup: WarmupConfiguration | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LoadBalancerSettings:
        if self.simple is not None and self.consistent_hash is not None:
            raise ValueError("only one of simple or consistentHash may be set")
        return self


class TcpKeepalive(ApiModel):
    probes: int | None = None
    time: Duration | None = None
    interval: Duration | None = None


class TCPSettings(ApiModel):
    max_connections: int | None = Field(default=None, ge=0)
    connect_timeout: Duration | None = None
    tcp_keepalive: TcpKeepalive | None = None
    max_connection_duration: Duration | None = None
    idle_timeout: Duration | None = None


class HTTPSettings(ApiModel):
    http1_max_pending_requests: int | None = Field(default=None, ge=0)
    http2_max_requests: int | None = Field(default=None, ge=0)
    max_requests_per_connection: int | None = Field(default=None, ge=0)
    max_retries: int | None = Field(default=None, ge=0)
    idle_timeout: Duration | None = None
    h2_upgrade_policy: str | None = None
    use_client_protocol: bool | None = None
    max_concurrent_streams: int | None = None


class ConnectionPoolSettings(ApiModel):
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None


class OutlierDetection(ApiModel):
    """Istio ``OutlierDetection``; unset fields take Istio/Envoy defaults at compile time."""

    consecutive_errors: int | None = None
    split_external_local_origin_errors: bool = False
    consecutive_local_origin_failures: int | None = Field(default=None, ge=0)
    consecutive_gateway_errors: int | None = Field(default=None, ge=0)
    consecutive_5xx_errors: int | None = Field(default=None, ge=0, alias="consecutive5xxErrors")
    interval: Duration | None = None
    base_ejection_time: Duration | None = None
    max_ejection_percent: int | None = Field(default=None, ge=0, le=100)
    min_health_percent: int | None = Field(default=None, ge=0, le=100)


class ClientTLSMode(StrEnum):
    DISABLE = "DISABLE"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"


class ClientTLSSettings(ApiModel):
    """Upstream TLS origination (Tier-1 to Tier-2)."""

    mode: ClientTLSMode = Field(default=ClientTLSMode.DISABLE, strict=False)
    client_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    sni: str | None = None
    insecure_skip_verify: bool | None = None
    ca_crl: str | None = None


class PortTrafficPolicy(ApiModel):
    port: PortSelector | None = None
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


class TunnelSettings(ApiModel):
    protocol: str | None = None
    target_host: str
    target_port: int


class RetryBudget(ApiModel):
    percent: float | None = None
    min_retry_concurrency: int | None = None


class TrafficPolicy(ApiModel):
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None
    port_level_settings: list[PortTrafficPolicy] = Field(default_factory=list, max_length=4096)
    tunnel: TunnelSettings | None = None
    proxy_protocol: dict[str, str] | None = None
    retry_budget: RetryBudget | None = None


class Subset(ApiModel):
    name: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)
    traffic_policy: TrafficPolicy | None = None


class WorkloadSelector(ApiModel):
    match_labels: dict[str, str] = Field(default_factory=dict)


class DestinationRuleSpec(ApiModel):
    host: str = Field(min_length=1)
    traffic_policy: TrafficPolicy | None = None
    subsets: list[Subset] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
    workload_selector: WorkloadSelector | None = None
