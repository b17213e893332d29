"""Observability: the label values of Istio's standard metrics, from config and flags only."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway_core.observability.istio_metrics import (
    DESTINATION_LABELS,
    SOURCE_LABELS,
    IstioMetrics,
    SourceInfo,
    destination_values,
    grpc_status_label,
)
from gateway_core.observability.metrics import GatewayMetrics
from gateway_core.pipeline import build_snapshot
from gateway_core.snapshot import ClusterSpec, Discovery, EndpointSpec, NodeInfo, frozen_labels
from gateway_core.upstream.host import Host

REPO = Path(__file__).resolve().parents[3]


def tier1_clusters() -> dict[str, ClusterSpec]:
    snapshot = build_snapshot([REPO / "deploy" / "lab" / "tier1"], NodeInfo(tier="tier1")).snapshot
    assert snapshot is not None
    return dict(snapshot.clusters)


def dest(spec: ClusterSpec | None, host: Host | None) -> dict[str, str]:
    return dict(zip(DESTINATION_LABELS, destination_values(spec, host), strict=True))


def test_tier1_destination_is_the_tier2_cluster_from_the_service_entry() -> None:
    """At Tier-1 a subset cluster of tier2.lab names the Tier-2's cluster (the endpoint's
    ``topology.istio.io/cluster``), the ServiceEntry as workload and its namespace."""
    spec = tier1_clusters()["outbound|8443|cluster-2|tier2.lab"]
    (endpoint,) = spec.endpoints
    host = Host("127.0.2.1", 8443, labels=endpoint.labels)
    got = dest(spec, host)
    assert got["destination_cluster"] == "cluster-2"
    assert got["destination_service"] == "tier2.lab"
    assert got["destination_service_name"] == "tier2.lab"
    assert got["destination_service_namespace"] == "tier1"
    assert (got["destination_workload"], got["destination_workload_namespace"]) == (
        "tier2-gateways",
        "tier1",
    )
    assert got["destination_version"] == "unknown"
    assert got["destination_canonical_revision"] == "latest"
    assert got["destination_principal"] == "unknown"
    # No host chosen (UH): the labels every endpoint of the subset shares still name it.
    assert dest(spec, None)["destination_cluster"] == "cluster-2"
    # The nearest-cluster route has endpoints in three clusters: only the host knows which.
    nearest = tier1_clusters()["outbound|8443||tier2.lab"]
    assert dest(nearest, None)["destination_cluster"] == "unknown"
    for ep in nearest.endpoints:
        cluster = ep.labels["topology.istio.io/cluster"]
        got = dest(nearest, Host(ep.address, ep.port, labels=ep.labels))
        assert got["destination_cluster"] == cluster


def test_kubernetes_service_names_and_endpoint_labels() -> None:
    """``<name>.<ns>.svc.<domain>`` gives the service name and namespace; version, canonical
    name and revision come from the endpoint's labels."""
    labels = frozen_labels(
        {"app": "reviews", "version": "v2", "service.istio.io/canonical-revision": "r7"}
    )
    spec = ClusterSpec(
        key="outbound|9080||reviews.bookinfo.svc.cluster.local",
        service_host="reviews.bookinfo.svc.cluster.local",
        port=9080,
        subset=None,
        discovery=Discovery.DNS,
        endpoints=(EndpointSpec("reviews", 9080, labels=labels),),
    )
    got = dest(spec, Host("10.0.0.1", 9080, labels=labels))
    assert got["destination_service_name"] == "reviews"
    assert got["destination_service_namespace"] == "bookinfo"
    assert got["destination_workload_namespace"] == "bookinfo"
    assert got["destination_version"] == "v2"
    assert got["destination_canonical_service"] == got["destination_app"] == "reviews"
    assert got["destination_canonical_revision"] == "r7"
    assert got["destination_cluster"] == "unknown"
    assert dest(None, None)["destination_service"] == "unknown"


def test_source_labels_from_flags_and_node_labels() -> None:
    source = SourceInfo(
        workload="tier1-gateway",
        namespace="gateway-tier1",
        cluster="hub",
        labels={"app": "edge", "version": "1.2"},
    )
    got = dict(zip(SOURCE_LABELS, source.values(), strict=True))
    assert got == {
        "reporter": "source",
        "source_workload": "tier1-gateway",
        "source_canonical_service": "edge",
        "source_canonical_revision": "1.2",
        "source_workload_namespace": "gateway-tier1",
        "source_principal": "unknown",
        "source_app": "edge",
        "source_version": "1.2",
        "source_cluster": "hub",
    }
    bare = dict(zip(SOURCE_LABELS, SourceInfo(workload="w").values(), strict=True))
    assert bare["source_canonical_service"] == "w"
    assert bare["source_canonical_revision"] == "latest"
    assert bare["source_workload_namespace"] == bare["source_cluster"] == "unknown"


def test_series_survive_a_reload_and_unknown_destinations_share_one() -> None:
    """A new configuration drops the cached destination labels but never a counter; requests
    without a destination, however many different hosts they named, are one series."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    istio: IstioMetrics = metrics.istio
    spec = tier1_clusters()["outbound|8443|cluster-1|tier2.lab"]
    (endpoint,) = spec.endpoints
    host = Host("127.0.1.1", 8443, labels=endpoint.labels)
    istio.record_request(istio.destination(spec, host), "http", 200, None, "-", 2.0, 0, 10)
    istio.reset_destinations()
    changed = dataclasses.replace(spec, service_entry=("tier1", "tier2-gateways"))
    istio.record_request(istio.destination(changed, host), "http", 200, None, "-", 700.0, 5, 10)
    for _ in range(50):
        istio.record_request(istio.destination(None, None), "http", 404, None, "NR", 0.1, 0, 0)
    text = generate_latest(registry).decode()
    counts = {
        (s.labels["destination_cluster"], s.labels["response_code"]): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "istio_requests_total"
    }
    assert counts == {("cluster-1", "200"): 2.0, ("unknown", "404"): 50.0}
    assert 'istio_request_duration_milliseconds_bucket{connection_security_policy="unknown"' in text
    durations = [
        (s.labels["le"], s.value)
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "istio_request_duration_milliseconds_bucket"
        and s.labels["destination_cluster"] == "cluster-1"
    ]
    assert ("5.0", 1.0) in durations and ("1000.0", 2.0) in durations


def test_grpc_status_values_are_bounded() -> None:
    """A grpc-status from the upstream becomes a label only when it is one of gRPC's codes;
    without one the HTTP status decides, as in Envoy."""
    assert grpc_status_label(b"5", 200) == b"5"
    assert grpc_status_label(b"16", 200) == b"16"
    assert grpc_status_label(b"99", 200) == b"2"
    assert grpc_status_label(b"x" * 40, 200) == b"2"
    assert grpc_status_label(None, 503) == b"14"  # UNAVAILABLE
    assert grpc_status_label(None, 404) == b"12"  # UNIMPLEMENTED
