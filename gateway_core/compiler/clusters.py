"""Control path: referenced destinations → ``ClusterSpec`` (Istio ``ClusterBuilder``).

A cluster exists for every (host, port, subset) a route or mirror references. Its endpoints come
from the ServiceEntry for the host (filtered by the subset's labels), or, for a host without a
ServiceEntry such as a Kubernetes Service name, from DNS resolution of the host itself. Policies
come from the DestinationRule: the subset's policy overrides the rule's field by field, and a
matching ``portLevelSettings`` entry replaces load balancer, pool, outlier detection and TLS as a
whole (Istio ``MergeTrafficPolicy``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from gateway_core.compiler.index import ConfigIndex
from gateway_core.compiler.locality import apply_distribute, assign_priorities
from gateway_core.compiler.policies import (
    EffectivePolicy,
    effective_policy,
    translate_health_check,
    translate_lb,
    translate_limits,
    translate_outlier,
    translate_sticky,
    upstream_protocol,
)
from gateway_core.config.destination_rule import (
    ClientTLSMode,
    ClientTLSSettings,
    ConnectionPoolSettings,
    LocalityLoadBalancerSetting,
    Subset,
)
from gateway_core.config.extensions import DestinationPolicySpec
from gateway_core.config.hosts import fqdn, is_ip
from gateway_core.config.service_entry import Resolution, ServiceEntrySpec
from gateway_core.snapshot import (
    UNLIMITED,
    ClusterSpec,
    Discovery,
    EndpointSpec,
    Locality,
    LocalityPolicy,
    NodeInfo,
    UpstreamTls,
    UpstreamTlsMode,
    frozen_labels,
    topology_labels,
)

DEFAULT_PORT = 80


def cluster_key(port: int, subset: str | None, host: str) -> str:
    return f"outbound|{port}|{subset or ''}|{host}"


@dataclass(slots=True)
class ClusterCollector:
    """Records the clusters routes reference; ``build`` turns them into specs afterwards."""

    index: ConfigIndex
    wanted: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)

    def cluster_for(
        self, host: str, namespace: str, port: int, subset: str | None
    ) -> tuple[str, str, int]:
        """(cluster key, FQDN host, port) for a destination as written in a VirtualService."""
        full = fqdn(host, namespace)
        if not port:
            port = self._default_port(full)
        key = cluster_key(port, subset, full)
        self.wanted.setdefault(key, (full, port, subset))
        return key, full, port

    def consistent_hash(self, key: str) -> bool:
        """Whether cluster ``key`` balances by consistent hash (its DestinationRule's
        ``consistentHash``, with subset and port-level settings applied)."""
        host, port, subset = self.wanted[key]
        lb = _traffic_policy(host, port, subset, self.index)[0].load_balancer
        return lb is not None and lb.consistent_hash is not None

    def _default_port(self, host: str) -> int:
        se = self.index.service(host)
        if se is not None and len(se.spec.ports) == 1:
            return se.spec.ports[0].number
        return DEFAULT_PORT

    def build(self, node: NodeInfo) -> dict[str, ClusterSpec]:
        return {
            key: build_cluster(key, host, port, subset, self.index, node)
            for key, (host, port, subset) in sorted(self.wanted.items())
        }


def _traffic_policy(
    host: str, port: int, subset: str | None, index: ConfigIndex
) -> tuple[EffectivePolicy, Subset | None]:
    """The DestinationRule policy in effect for (host, port, subset), and the subset."""
    dr = index.destination_rule(host)
    subset_spec = None
    if dr is not None and subset:
        subset_spec = next((s for s in dr.spec.subsets if s.name == subset), None)
    policy = effective_policy(
        dr.spec.traffic_policy if dr else None,
        subset_spec.traffic_policy if subset_spec else None,
        port,
    )
    return policy, subset_spec


def build_cluster(
    key: str, host: str, port: int, subset: str | None, index: ConfigIndex, node: NodeInfo
) -> ClusterSpec:
    policy, subset_spec = _traffic_policy(host, port, subset, index)
    labels = subset_spec.labels if subset_spec else {}
    discovery, endpoints = _endpoints(host, port, labels, index)
    outlier = translate_outlier(policy.outlier_detection)
    lb_settings = policy.load_balancer
    locality_setting = lb_settings.locality_lb_setting if lb_settings else None
    endpoints = assign_priorities(
        node.locality, node.labels, endpoints, locality_setting, outlier is not None
    )
    weighted = _locality_weighted(locality_setting, outlier is not None)
    if weighted and locality_setting is not None and locality_setting.distribute:
        endpoints = apply_distribute(node.locality, endpoints, locality_setting.distribute)
    elif weighted:
        endpoints = _locality_weights(endpoints)
    ext = index.destination_policy(host)
    ext_spec = ext.spec if ext is not None and isinstance(ext.spec, DestinationPolicySpec) else None
    return ClusterSpec(
        key=key,
        service_host=host,
        port=port,
        subset=subset,
        discovery=discovery,
        endpoints=endpoints,
        lb=translate_lb(lb_settings),
        outlier=outlier,
        limits=translate_limits(policy.connection_pool),
        tls=translate_client_tls(policy.tls, node),
        health_check=translate_health_check(ext_spec.health_check if ext_spec else None),
        sticky=translate_sticky(ext_spec.sticky_session if ext_spec else None),
        locality=LocalityPolicy(
            failover_enabled=outlier is not None
            and not (locality_setting is not None and locality_setting.enabled is False),
            locality_weighted=weighted,
        ),
        panic_threshold=outlier.min_health_percent if outlier is not None else 50,
        dns_refresh_min=node.dns_refresh_min,
        dns_refresh_max=node.dns_refresh_max,
        protocol=upstream_protocol(_port_protocol(host, port, index), policy.connection_pool),
        max_concurrent_streams=_max_streams(policy.connection_pool),
        spillover=ext_spec.spillover.enabled
        if ext_spec is not None and ext_spec.spillover is not None
        else node.spillover,
        service_entry=_service_entry_ref(host, index),
    )


def _service_entry_ref(host: str, index: ConfigIndex) -> tuple[str, str] | None:
    se = index.service(host)
    return (se.namespace, se.name) if se is not None else None


def _port_protocol(host: str, port: int, index: ConfigIndex) -> str | None:
    """The ServiceEntry port's protocol: its ``protocol`` field, else its name's prefix
    (Istio's port naming convention, ``<protocol>[-<suffix>]``)."""
    se = index.service(host)
    if se is None:
        return None
    service_port = next((p for p in se.spec.ports if p.number == port), None)
    if service_port is None:
        return None
    if service_port.protocol:
        return service_port.protocol.upper()
    return service_port.name.split("-", 1)[0].upper() if service_port.name else None


def _max_streams(pool: ConnectionPoolSettings | None) -> int:
    http = pool.http if pool is not None else None
    if http is not None and http.max_concurrent_streams:
        return http.max_concurrent_streams
    return UNLIMITED


def _locality_weighted(setting: LocalityLoadBalancerSetting | None, outlier: bool) -> bool:
    """Istio sets Envoy's locality-weighted LB for ``distribute``, and for an explicit
    ``failover``/``failoverPriority`` list once failover is active (outlier detection)."""
    if setting is None or setting.enabled is False:
        return False
    explicit = bool(setting.failover or setting.failover_priority)
    return bool(setting.distribute) or (outlier and explicit)


def _locality_weights(endpoints: tuple[EndpointSpec, ...]) -> tuple[EndpointSpec, ...]:
    """Without ``distribute`` a locality weighs the sum of its endpoints' weights (Istio's
    ``LocalityLbEndpoints.load_balancing_weight``), per priority level."""
    sums: dict[tuple[int, Locality], int] = {}
    for ep in endpoints:
        key = (ep.priority, ep.locality)
        sums[key] = sums.get(key, 0) + ep.weight
    return tuple(
        dataclasses.replace(ep, locality_weight=sums[(ep.priority, ep.locality)])
        for ep in endpoints
    )


def _endpoints(
    host: str, port: int, labels: dict[str, str], index: ConfigIndex
) -> tuple[Discovery, tuple[EndpointSpec, ...]]:
    se = index.service(host)
    if se is None:
        return Discovery.DNS, (EndpointSpec(address=host, port=port),)
    spec = se.spec
    service_port = next((p for p in spec.ports if p.number == port), None)
    target = (service_port.target_port or service_port.number) if service_port else port
    port_name = service_port.name if service_port else None
    discovery = _discovery(spec)
    if not spec.endpoints:
        if discovery is Discovery.STATIC:
            return discovery, ()  # e.g. a workloadSelector: no endpoints this gateway can see
        # DNS (or NONE) without endpoints: the hosts themselves are resolved.
        names = [h for h in spec.hosts if not h.startswith("*")] or [host]
        concrete = host if not host.startswith("*") else names[0]
        return discovery, (EndpointSpec(address=concrete, port=target),)
    out = []
    for ep in spec.endpoints:
        if not ep.address or any(ep.labels.get(k) != v for k, v in labels.items()):
            continue
        ep_port = ep.ports.get(port_name, target) if port_name else target
        locality = Locality.parse(ep.locality)
        out.append(
            EndpointSpec(
                address=ep.address,
                port=ep_port,
                weight=ep.weight or 1,
                locality=locality,
                labels=frozen_labels({**topology_labels(locality), **ep.labels}),
            )
        )
    return discovery, tuple(out)


def _discovery(spec: ServiceEntrySpec) -> Discovery:
    if spec.resolution is Resolution.STATIC:
        return Discovery.STATIC
    if spec.resolution is Resolution.DNS_ROUND_ROBIN:
        return Discovery.DNS_ROUND_ROBIN
    if spec.resolution is Resolution.NONE and all(is_ip(e.address or "") for e in spec.endpoints):
        return Discovery.STATIC if spec.endpoints else Discovery.DNS
    return Discovery.DNS


def translate_client_tls(tls: ClientTLSSettings | None, node: NodeInfo) -> UpstreamTls | None:
    if tls is None or tls.mode in (ClientTLSMode.DISABLE, ClientTLSMode.ISTIO_MUTUAL):
        return None
    cert, key, ca = tls.client_certificate, tls.private_key, tls.ca_certificates
    if tls.credential_name:
        base = os.path.join(node.cert_dir, tls.credential_name)
        if tls.mode is ClientTLSMode.MUTUAL:
            cert, key = os.path.join(base, "tls.crt"), os.path.join(base, "tls.key")
        ca = ca or os.path.join(base, "ca.crt")
    return UpstreamTls(
        mode=UpstreamTlsMode(tls.mode.value),
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        sni=tls.sni,
        subject_alt_names=tuple(tls.subject_alt_names),
        insecure_skip_verify=bool(tls.insecure_skip_verify),
    )
