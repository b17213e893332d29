"""Control path: DestinationRule policies → cluster settings, with Istio's merge rules."""

from __future__ import annotations

from gateway_core.snapshot import (
    UNLIMITED,
    Discovery,
    GrpcHealthCheckPolicy,
    HealthCheckPolicy,
    LbKind,
)
from tests.gateway_core.compiler.compiler_testkit import GATEWAY, snapshot, virtual_service

SERVICE = (
    virtual_service("""  - match: [{uri: {prefix: /v1}}]
    route: [{destination: {host: svc.example.internal, subset: v1, port: {number: 80}}}]
  - match: [{uri: {prefix: /v2}}]
    route: [{destination: {host: svc.example.internal, subset: v2, port: {number: 80}}}]
  - route: [{destination: {host: svc.example.internal, port: {number: 9000}}}]""")
    + """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc}
spec:
  hosts: [svc.example.internal]
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  - {number: 9000, name: admin, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, labels: {version: v1}, locality: us-west1/us-west1-a}
  - {address: 10.0.0.2, labels: {version: v2}, locality: us-west1/us-west1-b, weight: 3}
  - {address: 10.0.0.3, labels: {version: v2}, ports: {http: 7070}, locality: us-east1/us-east1-b}
"""
)

RULE = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example.internal
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 10}
    outlierDetection: {consecutive5xxErrors: 2}
    portLevelSettings:
    - port: {number: 9000}
      loadBalancer: {simple: RANDOM}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: X-User}
"""


SUBSETS_ONLY = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example.internal
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def test_defaults_without_destination_rule() -> None:
    """No traffic policy: LEAST_REQUEST, breakers at 2^32-1, no outlier detection, panic 50%."""
    c = snapshot(GATEWAY + SERVICE + SUBSETS_ONLY).clusters["outbound|80|v1|svc.example.internal"]
    assert c.lb.kind is LbKind.LEAST_REQUEST
    assert c.limits.max_connections == UNLIMITED
    assert c.outlier is None
    assert c.panic_threshold == 50


def test_endpoints_follow_subset_labels_and_target_ports() -> None:
    """Subset labels filter endpoints; ports come from endpoint ports, then targetPort."""
    snap = snapshot(GATEWAY + SERVICE + RULE)
    v2 = snap.clusters["outbound|80|v2|svc.example.internal"]
    assert [(e.address, e.port, e.weight) for e in v2.endpoints] == [
        ("10.0.0.2", 8080, 3),
        ("10.0.0.3", 7070, 1),
    ]
    assert v2.discovery is Discovery.STATIC


def test_subset_policy_overrides_rule_policy_field_by_field() -> None:
    """The subset's loadBalancer wins; connection pool and outlier detection are inherited."""
    snap = snapshot(GATEWAY + SERVICE + RULE)
    v1 = snap.clusters["outbound|80|v1|svc.example.internal"]
    v2 = snap.clusters["outbound|80|v2|svc.example.internal"]
    assert v1.lb.kind is LbKind.ROUND_ROBIN
    assert v2.lb.kind is LbKind.RING_HASH
    assert v2.lb.ring_size == 1024
    assert v2.limits.max_connections == 10
    assert v2.outlier is not None
    assert v2.outlier.consecutive_5xx == 2


def test_port_level_settings_replace_not_merge() -> None:
    """A matching portLevelSettings entry replaces the policy: omitted fields take defaults."""
    snap = snapshot(GATEWAY + SERVICE + RULE)
    admin = snap.clusters["outbound|9000||svc.example.internal"]
    assert admin.lb.kind is LbKind.RANDOM
    assert admin.limits.max_connections == UNLIMITED
    assert admin.outlier is None


def test_outlier_detection_defaults_and_panic() -> None:
    """Unset outlier fields take Envoy's defaults; panic threshold is minHealthPercent (0)."""
    snap = snapshot(GATEWAY + SERVICE + RULE)
    o = snap.clusters["outbound|80|v1|svc.example.internal"].outlier
    assert o is not None
    assert (o.interval, o.base_ejection_time, o.max_ejection_percent) == (10.0, 30.0, 10)
    assert (o.consecutive_gateway, o.split_local_origin) == (0, False)
    assert snap.clusters["outbound|80|v1|svc.example.internal"].panic_threshold == 0


def test_locality_priorities_need_outlier_detection() -> None:
    """With outlier detection, endpoints get Istio's locality priorities; without, all are 0."""
    with_od = snapshot(GATEWAY + SERVICE + RULE).clusters["outbound|80|v2|svc.example.internal"]
    assert [(e.address, e.priority) for e in with_od.endpoints] == [
        ("10.0.0.2", 0),
        ("10.0.0.3", 1),
    ]
    without = snapshot(GATEWAY + SERVICE + SUBSETS_ONLY).clusters[
        "outbound|80|v2|svc.example.internal"
    ]
    assert [e.priority for e in without.endpoints] == [0, 0]


def test_host_without_service_entry_uses_dns() -> None:
    """A destination without a ServiceEntry is resolved by DNS on its FQDN and port."""
    text = GATEWAY + virtual_service(
        "  - route: [{destination: {host: cart, port: {number: 8080}}}]",
        namespace="shop",
        gateway="default/gw",
    )
    [cluster] = snapshot(text).clusters.values()
    assert cluster.key == "outbound|8080||cart.shop.svc.cluster.local"
    assert cluster.discovery is Discovery.DNS
    assert [(e.address, e.port) for e in cluster.endpoints] == [
        ("cart.shop.svc.cluster.local", 8080)
    ]


FAILOVER = """
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example.internal
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2}
    loadBalancer:
      localityLbSetting:
        failover: [{from: us-west1, to: us-east1}]
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def test_locality_weighting_follows_istios_rule() -> None:
    """An explicit failover list with outlier detection turns on locality weights (endpoint
    weight sums); outlier detection alone does not."""
    explicit = snapshot(GATEWAY + SERVICE + FAILOVER).clusters[
        "outbound|80|v2|svc.example.internal"
    ]
    assert explicit.locality.locality_weighted
    assert [(e.address, e.locality_weight) for e in explicit.endpoints] == [
        ("10.0.0.2", 3),
        ("10.0.0.3", 1),
    ]
    implicit = snapshot(GATEWAY + SERVICE + RULE).clusters["outbound|80|v2|svc.example.internal"]
    assert not implicit.locality.locality_weighted
    assert [e.locality_weight for e in implicit.endpoints] == [0, 0]


def test_endpoints_get_topology_labels_from_their_locality() -> None:
    """region/zone labels are derived from the endpoint locality unless written explicitly."""
    c = snapshot(GATEWAY + SERVICE + RULE).clusters["outbound|80|v2|svc.example.internal"]
    labels = dict(c.endpoints[1].labels)
    assert labels["topology.kubernetes.io/region"] == "us-east1"
    assert labels["topology.kubernetes.io/zone"] == "us-east1-b"
    assert labels["version"] == "v2"


def test_static_service_without_endpoints_has_none() -> None:
    """A STATIC ServiceEntry without endpoints (e.g. a workloadSelector) gives no endpoints."""
    text = (
        GATEWAY
        + virtual_service("  - route: [{destination: {host: ws.internal}}]")
        + """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ws}
spec:
  hosts: [ws.internal]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: ws}}
"""
    )
    [cluster] = snapshot(text).clusters.values()
    assert cluster.endpoints == ()


def _destination_policy(health_check: str) -> str:
    return f"""---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {{name: svc}}
spec:
  host: svc.example.internal
  healthCheck: {health_check}
"""


def test_grpc_health_check_compiles_to_every_cluster_of_the_host() -> None:
    """A ``grpc`` health check reaches every port and subset of the host with its service name,
    authority, interval, timeout and thresholds; an HTTP one has no ``grpc`` part."""
    snap = snapshot(
        GATEWAY
        + SERVICE
        + RULE
        + _destination_policy(
            "{grpc: {serviceName: demo.v1.Demo, authority: svc.example.com}, interval: 2s, "
            "timeout: 300ms, unhealthyThreshold: 3, healthyThreshold: 1}"
        )
    )
    expected = HealthCheckPolicy(
        interval=2.0,
        timeout=0.3,
        unhealthy_threshold=3,
        healthy_threshold=1,
        grpc=GrpcHealthCheckPolicy(service_name="demo.v1.Demo", authority="svc.example.com"),
    )
    for key in ("outbound|80|v1|svc.example.internal", "outbound|9000||svc.example.internal"):
        assert snap.clusters[key].health_check == expected
    default_service = snapshot(GATEWAY + SERVICE + SUBSETS_ONLY + _destination_policy("{grpc: {}}"))
    hc = default_service.clusters["outbound|9000||svc.example.internal"].health_check
    assert hc is not None
    assert hc.grpc == GrpcHealthCheckPolicy(service_name="", authority=None)
    assert hc.describe() == "grpc.health.v1 Check ''"
    http = snapshot(GATEWAY + SERVICE + SUBSETS_ONLY + _destination_policy("{path: /ready}"))
    http_hc = http.clusters["outbound|9000||svc.example.internal"].health_check
    assert http_hc is not None
    assert (http_hc.path, http_hc.grpc) == ("/ready", None)
