"""Control path: DestinationRule traffic policy → the snapshot's policy records.

Defaults follow Istio's translation to Envoy (Istio's DestinationRule reference, and
``defaultLBAlgorithm``, ``getDefaultCircuitBreakerThresholds`` and ``applyOutlierDetection`` in
istio/istio ``pilot/pkg/networking/core/cluster_traffic_policy.go``): LEAST_REQUEST when
``simple`` is unset; every circuit breaker at 2^32-1; outlier detection with Envoy's defaults
for unset fields and panic threshold = ``minHealthPercent`` (0 = no panic).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway_core.config.destination_rule import (
    ClientTLSSettings,
    ConnectionPoolSettings,
    LoadBalancerSettings,
    OutlierDetection,
    SimpleLB,
    TrafficPolicy,
)
from gateway_core.config.extensions import HealthCheck, StickySession, StickyTarget
from gateway_core.snapshot import (
    GrpcHealthCheckPolicy,
    HashKeyKind,
    HashKeySpec,
    HealthCheckPolicy,
    LbKind,
    LbPolicy,
    OutlierPolicy,
    PoolLimits,
    StickyPolicy,
    UpstreamProtocol,
)

_SIMPLE_KINDS = {
    SimpleLB.UNSPECIFIED: LbKind.LEAST_REQUEST,
    SimpleLB.LEAST_CONN: LbKind.LEAST_REQUEST,
    SimpleLB.LEAST_REQUEST: LbKind.LEAST_REQUEST,
    SimpleLB.ROUND_ROBIN: LbKind.ROUND_ROBIN,
    SimpleLB.RANDOM: LbKind.RANDOM,
    SimpleLB.PASSTHROUGH: LbKind.PASSTHROUGH,
}


@dataclass(frozen=True, slots=True)
class EffectivePolicy:
    load_balancer: LoadBalancerSettings | None = None
    connection_pool: ConnectionPoolSettings | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLSSettings | None = None


def effective_policy(
    rule: TrafficPolicy | None, subset: TrafficPolicy | None, port: int
) -> EffectivePolicy:
    """Istio ``MergeTrafficPolicy``: subset fields override, port-level settings replace whole."""
    merged = _with_port(rule, port) if rule is not None else EffectivePolicy()
    if subset is None:
        return merged
    merged = EffectivePolicy(
        load_balancer=subset.load_balancer or merged.load_balancer,
        connection_pool=subset.connection_pool or merged.connection_pool,
        outlier_detection=subset.outlier_detection or merged.outlier_detection,
        tls=subset.tls or merged.tls,
    )
    for pls in subset.port_level_settings:
        if pls.port is not None and pls.port.number == port:
            return EffectivePolicy(
                pls.load_balancer, pls.connection_pool, pls.outlier_detection, pls.tls
            )
    return merged


def _with_port(policy: TrafficPolicy, port: int) -> EffectivePolicy:
    for pls in policy.port_level_settings:
        if pls.port is not None and pls.port.number == port:
            return EffectivePolicy(
                pls.load_balancer, pls.connection_pool, pls.outlier_detection, pls.tls
            )
    return EffectivePolicy(
        policy.load_balancer, policy.connection_pool, policy.outlier_detection, policy.tls
    )


def translate_lb(lb: LoadBalancerSettings | None) -> LbPolicy:
    if lb is None:
        return LbPolicy()
    ch = lb.consistent_hash
    if ch is None:
        return LbPolicy(kind=_SIMPLE_KINDS[lb.simple or SimpleLB.UNSPECIFIED])
    if ch.http_header_name:
        key = HashKeySpec(HashKeyKind.HEADER, ch.http_header_name.lower())
    elif ch.http_cookie is not None:
        c = ch.http_cookie
        key = HashKeySpec(HashKeyKind.COOKIE, c.name, c.path, c.ttl)
    elif ch.use_source_ip:
        key = HashKeySpec(HashKeyKind.SOURCE_IP)
    else:
        key = HashKeySpec(HashKeyKind.QUERY_PARAMETER, ch.http_query_parameter_name or "")
    if ch.maglev is not None:
        return LbPolicy(
            kind=LbKind.MAGLEV, hash_key=key, maglev_table_size=ch.maglev.table_size or 65537
        )
    ring = (ch.ring_hash.minimum_ring_size if ch.ring_hash else None) or ch.minimum_ring_size
    return LbPolicy(kind=LbKind.RING_HASH, hash_key=key, ring_size=ring or 1024)


_H2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})


def upstream_protocol(
    port_protocol: str | None, pool: ConnectionPoolSettings | None
) -> UpstreamProtocol:
    """What the gateway speaks upstream, as Istio decides it: HTTP/2 for ``HTTP2``, ``GRPC``
    and ``GRPC-WEB`` ports; for HTTP ports, HTTP/2 with ``h2UpgradePolicy: UPGRADE``, the
    client's protocol with ``useClientProtocol``, else HTTP/1.1 (Istio's mesh default
    ``DO_NOT_UPGRADE`` for gateways)."""
    if port_protocol in _H2_PROTOCOLS:
        return UpstreamProtocol.HTTP2
    http = pool.http if pool is not None else None
    if http is not None:
        if http.use_client_protocol:
            return UpstreamProtocol.CLIENT
        if http.h2_upgrade_policy == "UPGRADE":
            return UpstreamProtocol.HTTP2
    return UpstreamProtocol.HTTP1


def translate_limits(pool: ConnectionPoolSettings | None) -> PoolLimits:
    if pool is None:
        return PoolLimits()
    defaults = PoolLimits()
    tcp, http = pool.tcp, pool.http
    return PoolLimits(
        max_connections=_limit(tcp.max_connections if tcp else None, defaults.max_connections),
        max_pending_requests=_limit(
            http.http1_max_pending_requests if http else None, defaults.max_pending_requests
        ),
        max_requests=_limit(http.http2_max_requests if http else None, defaults.max_requests),
        max_retries=_limit(http.max_retries if http else None, defaults.max_retries),
        max_requests_per_connection=(http.max_requests_per_connection or 0) if http else 0,
        connect_timeout=(
            tcp.connect_timeout if tcp and tcp.connect_timeout else defaults.connect_timeout
        ),
        idle_timeout=_idle(pool, defaults.idle_timeout),
    )


def _limit(value: int | None, default: int) -> int:
    # Istio: 0 means "not set" for these counters.
    return value if value else default


def _idle(pool: ConnectionPoolSettings, default: float) -> float:
    if pool.http is not None and pool.http.idle_timeout is not None:
        return pool.http.idle_timeout
    if pool.tcp is not None and pool.tcp.idle_timeout is not None:
        return pool.tcp.idle_timeout
    return default


def translate_outlier(od: OutlierDetection | None) -> OutlierPolicy | None:
    if od is None:
        return None
    consecutive_5xx = 5 if od.consecutive_5xx_errors is None else od.consecutive_5xx_errors
    gateway = od.consecutive_gateway_errors or 0
    if od.consecutive_errors and od.consecutive_5xx_errors is None:
        # Deprecated field: Istio mapped it to gateway errors only (istio/api#617).
        gateway, consecutive_5xx = od.consecutive_errors, 0
    local = od.consecutive_local_origin_failures
    return OutlierPolicy(
        consecutive_5xx=consecutive_5xx,
        consecutive_gateway=gateway,
        consecutive_local_origin=(local if local is not None else 5)
        if od.split_external_local_origin_errors
        else 0,
        split_local_origin=od.split_external_local_origin_errors,
        interval=od.interval or 10.0,
        base_ejection_time=od.base_ejection_time or 30.0,
        max_ejection_percent=od.max_ejection_percent or 10,
        min_health_percent=od.min_health_percent or 0,
    )


def translate_health_check(hc: HealthCheck | None) -> HealthCheckPolicy | None:
    if hc is None:
        return None
    return HealthCheckPolicy(
        path=hc.path,
        interval=hc.interval,
        timeout=hc.timeout,
        unhealthy_threshold=hc.unhealthy_threshold,
        healthy_threshold=hc.healthy_threshold,
        expected_statuses=tuple(hc.expected_statuses),
        host=hc.host,
        grpc=None
        if hc.grpc is None
        else GrpcHealthCheckPolicy(service_name=hc.grpc.service_name, authority=hc.grpc.authority),
    )


def translate_sticky(sticky: StickySession | None) -> StickyPolicy | None:
    if sticky is None:
        return None
    return StickyPolicy(
        cookie_name=sticky.cookie.name,
        cookie_path=sticky.cookie.path,
        cookie_ttl=sticky.cookie.ttl,
        target_subset=sticky.target is StickyTarget.SUBSET,
    )
