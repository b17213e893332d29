"""Control path: checks of a DestinationRule ``TrafficPolicy`` (Istio ``validateTrafficPolicy``
and the agent-side ``ValidateLocalityLbSetting``/``ValidateTLS``)."""

from __future__ import annotations

from gateway_core.config.destination_rule import (
    ClientTLSMode,
    ClientTLSSettings,
    ConnectionPoolSettings,
    ConsistentHashLB,
    LoadBalancerSettings,
    OutlierDetection,
    PortTrafficPolicy,
    SimpleLB,
    TrafficPolicy,
)
from gateway_core.config.validation._common import (
    Reporter,
    duration_error,
    fqdn_error,
    is_ip,
    port_error,
    prime,
)
from gateway_core.config.validation.locality import validate_locality_lb

MAGLEV_TABLE_LIMIT = 5000011
ENVOY_MAX_RING_SIZE = 8 * 1024 * 1024
H2_UPGRADE_POLICIES = frozenset({"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"})
WARMUP_BALANCERS = frozenset(
    {None, SimpleLB.UNSPECIFIED, SimpleLB.ROUND_ROBIN, SimpleLB.LEAST_REQUEST, SimpleLB.LEAST_CONN}
)


def validate_traffic_policy(policy: TrafficPolicy, path: str, rep: Reporter) -> None:
    fields = (
        policy.load_balancer,
        policy.connection_pool,
        policy.outlier_detection,
        policy.tls,
        policy.port_level_settings or None,
        policy.tunnel,
        policy.proxy_protocol,
        policy.retry_budget,
    )
    if all(field is None for field in fields):
        rep.error(path, "traffic policy must have at least one field")
        return
    if policy.tunnel is not None and policy.proxy_protocol is not None:
        rep.error(path, "tunnel and proxyProtocol must not be set together")
        return
    _validate_common(policy, path, rep)
    for i, port_policy in enumerate(policy.port_level_settings):
        _validate_port_policy(port_policy, f"{path}.portLevelSettings[{i}]", rep)
    _validate_tunnel(policy, path, rep)


def _validate_common(policy: TrafficPolicy | PortTrafficPolicy, path: str, rep: Reporter) -> None:
    if policy.outlier_detection is not None:
        validate_outlier_detection(policy.outlier_detection, f"{path}.outlierDetection", rep)
    if policy.connection_pool is not None:
        _validate_connection_pool(policy.connection_pool, f"{path}.connectionPool", rep)
    if policy.load_balancer is not None:
        _validate_load_balancer(
            policy.load_balancer, f"{path}.loadBalancer", rep, policy.outlier_detection
        )
    if policy.tls is not None:
        validate_client_tls(policy.tls, f"{path}.tls", rep)


def _validate_port_policy(policy: PortTrafficPolicy, path: str, rep: Reporter) -> None:
    if policy.port is None:
        rep.error(f"{path}.port", "portTrafficPolicy must have valid port")
    else:
        rep.error(f"{path}.port.number", port_error(policy.port.number))
    parts = (policy.outlier_detection, policy.connection_pool, policy.load_balancer, policy.tls)
    if all(part is None for part in parts):
        rep.error(path, "port traffic policy must have at least one field")
        return
    _validate_common(policy, path, rep)


def _validate_tunnel(policy: TrafficPolicy, path: str, rep: Reporter) -> None:
    tunnel = policy.tunnel
    if tunnel is None:
        return
    if tunnel.protocol and tunnel.protocol not in ("CONNECT", "POST"):
        rep.error(f"{path}.tunnel.protocol", 'tunnel protocol must be "CONNECT" or "POST"')
    fqdn_problem = fqdn_error(tunnel.target_host)
    if fqdn_problem and not is_ip(tunnel.target_host):
        rep.error(
            f"{path}.tunnel.targetHost",
            f"tunnel target host must be valid FQDN or IP address: {fqdn_problem}",
        )
    port_problem = port_error(tunnel.target_port)
    if port_problem:
        rep.error(f"{path}.tunnel.targetPort", f"tunnel target port is invalid: {port_problem}")


def validate_outlier_detection(outlier: OutlierDetection, path: str, rep: Reporter) -> None:
    if outlier.base_ejection_time is not None:
        rep.error(f"{path}.baseEjectionTime", duration_error(outlier.base_ejection_time))
    if outlier.consecutive_errors:
        rep.warning(
            f"{path}.consecutiveErrors",
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors "
            "or consecutive5xxErrors instead",
        )
    if not outlier.split_external_local_origin_errors and outlier.consecutive_local_origin_failures:
        rep.error(
            f"{path}.consecutiveLocalOriginFailures",
            "outlier detection consecutive local origin failures is specified, but split "
            "external local origin errors is set to false",
        )
    if outlier.interval is not None:
        rep.error(f"{path}.interval", duration_error(outlier.interval))


def _validate_connection_pool(pool: ConnectionPoolSettings, path: str, rep: Reporter) -> None:
    if pool.http is None and pool.tcp is None:
        rep.error(path, "connection pool must have at least one field")
        return
    if (http := pool.http) is not None:
        if http.idle_timeout is not None:
            rep.error(f"{path}.http.idleTimeout", duration_error(http.idle_timeout))
        policy = http.h2_upgrade_policy
        if policy is not None and policy not in H2_UPGRADE_POLICIES:
            rep.error(
                f"{path}.http.h2UpgradePolicy",
                f"h2UpgradePolicy must be one of DEFAULT, DO_NOT_UPGRADE or UPGRADE (got {policy})",
            )
        if policy == "UPGRADE" and http.use_client_protocol:
            rep.error(
                f"{path}.http.useClientProtocol",
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            )
        if http.max_concurrent_streams is not None and http.max_concurrent_streams < 0:
            rep.error(
                f"{path}.http.maxConcurrentStreams", "max concurrent streams must be non-negative"
            )
    if (tcp := pool.tcp) is not None:
        for field, value in (
            ("connectTimeout", tcp.connect_timeout),
            ("maxConnectionDuration", tcp.max_connection_duration),
        ):
            if value is not None:
                rep.error(f"{path}.tcp.{field}", duration_error(value))
        # An idle timeout of 0s disables it, so only non-zero values must be valid durations.
        if tcp.idle_timeout:
            rep.error(f"{path}.tcp.idleTimeout", duration_error(tcp.idle_timeout))
        keepalive = tcp.tcp_keepalive
        if keepalive is not None:
            for field, value in (("time", keepalive.time), ("interval", keepalive.interval)):
                if value is not None:
                    rep.error(f"{path}.tcp.tcpKeepalive.{field}", duration_error(value))


def _validate_load_balancer(
    lb: LoadBalancerSettings, path: str, rep: Reporter, outlier: OutlierDetection | None
) -> None:
    if lb.consistent_hash is not None:
        _validate_consistent_hash(lb.consistent_hash, f"{path}.consistentHash", rep)
    if lb.locality_lb_setting is not None:
        validate_locality_lb(lb.locality_lb_setting, f"{path}.localityLbSetting", rep, outlier)
    if lb.warmup is not None:
        warmup = lb.warmup
        rep.error(f"{path}.warmup.duration", duration_error(warmup.duration))
        if warmup.minimum_percent is not None and not 0 <= warmup.minimum_percent <= 100:
            rep.error(
                f"{path}.warmup.minimumPercent",
                "minimumPercent value should be between 0 and 100",
            )
        if warmup.aggression is not None and warmup.aggression < 1:
            rep.error(
                f"{path}.warmup.aggression", "aggression should be greater than or equal to 1"
            )
        if lb.warmup_duration_secs is not None:
            rep.error(f"{path}.warmup", "only one of warmupDurationSecs or warmup may be set")
    elif lb.warmup_duration_secs is not None:
        rep.error(f"{path}.warmupDurationSecs", duration_error(lb.warmup_duration_secs))
    warmup_set = lb.warmup is not None or lb.warmup_duration_secs is not None
    if warmup_set and (lb.consistent_hash is not None or lb.simple not in WARMUP_BALANCERS):
        field = "warmup" if lb.warmup is not None else "warmupDurationSecs"
        rep.warning(
            f"{path}.{field}",
            "warmup is ignored: slow start applies only to ROUND_ROBIN and LEAST_REQUEST "
            "load balancers",
        )


def _validate_consistent_hash(ch: ConsistentHashLB, path: str, rep: Reporter) -> None:
    keys = (
        ch.http_header_name,
        ch.http_cookie,
        ch.use_source_ip or None,
        ch.http_query_parameter_name,
    )
    if all(key is None for key in keys):
        rep.error(
            path,
            "consistentHash must set one of httpHeaderName, httpCookie, useSourceIp or "
            "httpQueryParameterName",
        )
    if ch.minimum_ring_size:
        rep.warning(
            f"{path}.minimumRingSize",
            "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash "
            "configuration instead",
        )
        if ch.ring_hash is not None or ch.maglev is not None:
            rep.error(path, "only one of MinimumRingSize or Maglev/Ringhash can be specified")
    if ch.http_cookie is not None and ch.http_cookie.ttl:
        rep.error(f"{path}.httpCookie.ttl", duration_error(ch.http_cookie.ttl))
    for field, size in (
        ("minimumRingSize", ch.minimum_ring_size),
        ("ringHash.minimumRingSize", ch.ring_hash.minimum_ring_size if ch.ring_hash else None),
    ):
        if size is not None and size > ENVOY_MAX_RING_SIZE:
            rep.error(
                f"{path}.{field}",
                f"minimumRingSize {size} exceeds Envoy's maximum ring size {ENVOY_MAX_RING_SIZE}",
            )
    if ch.maglev is not None:
        size = ch.maglev.table_size or 0
        if size == 0:
            rep.error(f"{path}.maglev.tableSize", "tableSize must be set for maglev")
            return
        if size >= MAGLEV_TABLE_LIMIT:
            rep.error(
                f"{path}.maglev.tableSize",
                f"tableSize must be less than {MAGLEV_TABLE_LIMIT} for maglev",
            )
        if not prime(size):
            rep.error(f"{path}.maglev.tableSize", "tableSize must be a prime number for maglev")


def validate_client_tls(tls: ClientTLSSettings, path: str, rep: Reporter) -> None:
    """Istio ``agent.ValidateTLS`` plus the ISTIO_MUTUAL rules of this gateway."""
    cert_fields = {
        "clientCertificate": tls.client_certificate,
        "privateKey": tls.private_key,
        "caCertificates": tls.ca_certificates,
        "credentialName": tls.credential_name,
    }
    if tls.mode is ClientTLSMode.ISTIO_MUTUAL:
        present = [name for name, value in cert_fields.items() if value]
        for name in present:
            rep.error(f"{path}.{name}", f"ISTIO_MUTUAL TLS cannot have associated {name}")
        if not present:
            rep.warning(
                f"{path}.mode",
                "ISTIO_MUTUAL: this gateway has no mesh identity and will connect in plaintext",
            )
        return
    if tls.insecure_skip_verify:
        _validate_insecure_skip_verify(tls, path, rep)
    mutual_or_simple = tls.mode in (ClientTLSMode.SIMPLE, ClientTLSMode.MUTUAL)
    if mutual_or_simple and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            rep.error(
                path,
                "cannot specify client certificates or CA certificate or CA CRL If "
                "credentialName is set",
            )
        return
    if tls.mode is ClientTLSMode.MUTUAL:
        if not tls.client_certificate:
            rep.error(f"{path}.clientCertificate", "client certificate required for mutual tls")
        if not tls.private_key:
            rep.error(f"{path}.privateKey", "private key required for mutual tls")


def _validate_insecure_skip_verify(tls: ClientTLSSettings, path: str, rep: Reporter) -> None:
    if tls.mode is ClientTLSMode.SIMPLE and (
        tls.ca_certificates or tls.credential_name or tls.subject_alt_names
    ):
        rep.error(
            f"{path}.insecureSkipVerify",
            "cannot specify CaCertificates or CredentialName or SubjectAltNames when "
            "InsecureSkipVerify is set true",
        )
    if tls.mode is ClientTLSMode.MUTUAL and (tls.ca_certificates or tls.subject_alt_names):
        rep.error(
            f"{path}.insecureSkipVerify",
            "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
        )
