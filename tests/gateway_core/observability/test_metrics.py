"""Observability: the gateway's metrics, rendered in Prometheus text format."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from certs.generate import LEAF_VALIDITY
from gateway_core.observability.metrics import FOLD_EVERY, ClusterSample, GatewayMetrics
from gateway_core.observability.tracing import TracingCollector
from gateway_core.pipeline import build_snapshot
from gateway_core.security.jwks_store import JwksStore, UriState
from gateway_core.server.workers import WorkerHandle, WorkerStats
from gateway_core.snapshot import NodeInfo
from gateway_core.utils.clock import FakeClock

REPO = Path(__file__).resolve().parents[3]
SAMPLE = ClusterSample(
    key="outbound|8443|cluster-1|tier2.lab",
    rq={"2xx": 5, "3xx": 0, "4xx": 0, "5xx": 1},
    retries=2, overflow=1, connect_fail=3, connect_timeout=0, cx_active=4,
    rq_active=1, rq_pending=0, ejections_active=1, ejections_total=2,
    hosts=3, healthy_hosts=2,
)  # fmt: skip


def test_requests_flags_and_clusters_are_exposed() -> None:
    """Counters, the duration histogram and cluster gauges appear with their labels."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    metrics.record_request(200, 0.002, [])
    metrics.record_request(404, 0.0001, ["NR"])
    metrics.record_request(503, 0.01, ["UF"])
    metrics.config_version = "abc123"
    metrics.clusters_source = lambda: [SAMPLE]
    text = generate_latest(registry).decode()
    assert 'gateway_downstream_rq_total{code_class="2xx",tier="tier1"} 1.0' in text
    assert 'gateway_downstream_rq_total{code_class="4xx",tier="tier1"} 1.0' in text
    assert 'gateway_response_flags_total{flag="NR",tier="tier1"} 1.0' in text
    assert 'gateway_response_flags_total{flag="UF",tier="tier1"} 1.0' in text
    assert 'gateway_downstream_rq_time_seconds_bucket{le="0.0025",tier="tier1"} 2.0' in text
    assert 'gateway_downstream_rq_time_seconds_count{tier="tier1"} 3.0' in text
    assert 'gateway_config_info{tier="tier1",version="abc123"} 1.0' in text
    key = 'cluster="outbound|8443|cluster-1|tier2.lab",tier="tier1"'
    assert f"gateway_upstream_rq_retry_total{{{key}}} 2.0" in text
    assert f"gateway_upstream_rq_pending_overflow_total{{{key}}} 1.0" in text
    assert f"gateway_upstream_hosts_healthy{{{key}}} 2.0" in text
    cluster = 'cluster="outbound|8443|cluster-1|tier2.lab"'
    assert f'gateway_upstream_rq_total{{{cluster},code_class="5xx",tier="tier1"}} 1.0' in text


def test_registries_are_independent() -> None:
    """Two gateways in one process never share metrics (the registry is injected)."""
    a, b = CollectorRegistry(), CollectorRegistry()
    GatewayMetrics(a, "tier2").record_request(200, 0.001, [])
    GatewayMetrics(b, "tier2")
    assert (
        'gateway_downstream_rq_total{code_class="2xx",tier="tier2"} 1.0'
        in generate_latest(a).decode()
    )
    assert (
        'gateway_downstream_rq_total{code_class="2xx",tier="tier2"} 0.0'
        in generate_latest(b).decode()
    )


def test_batched_counts_match_one_by_one() -> None:
    """Requests are counted in batches: across and below the batch size, and for statuses
    outside 100-599, the scrape shows exactly what was recorded."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    total = FOLD_EVERY + 7  # one full batch plus a partial one folded by the scrape
    for i in range(total):
        metrics.record_request(200 if i % 2 else 302, 0.0002 if i % 3 else 0.2, [])
    metrics.record_request(999, 30.0, [])
    text = generate_latest(registry).decode()
    twos = total // 2
    assert f'gateway_downstream_rq_total{{code_class="2xx",tier="tier1"}} {float(twos)}' in text
    threes = total - twos
    assert f'gateway_downstream_rq_total{{code_class="3xx",tier="tier1"}} {float(threes)}' in text
    assert 'gateway_downstream_rq_total{code_class="5xx",tier="tier1"} 1.0' in text
    fast = sum(1 for i in range(total) if i % 3)
    assert (
        f'gateway_downstream_rq_time_seconds_bucket{{le="0.0005",tier="tier1"}} {float(fast)}'
        in text
    )
    assert (
        f'gateway_downstream_rq_time_seconds_bucket{{le="10.0",tier="tier1"}} {float(total)}'
        in text
    )
    assert f'gateway_downstream_rq_time_seconds_count{{tier="tier1"}} {float(total + 1)}' in text
    expected_sum = sum(0.0002 if i % 3 else 0.2 for i in range(total)) + 30.0
    line = next(
        x for x in text.splitlines() if x.startswith("gateway_downstream_rq_time_seconds_sum")
    )
    assert abs(float(line.split()[-1]) - expected_sum) < 1e-9


def test_certificate_expiry_counts_down_on_the_wall_clock() -> None:
    """The expiry gauge is notAfter minus the injected wall clock at each scrape."""
    registry, clock = CollectorRegistry(), FakeClock(1_000_000.0)
    metrics = GatewayMetrics(registry, "tier2", wall_clock=clock.monotonic)
    metrics.tls_certificates = lambda: [("0.0.0.0_8443", "s", "a/tls.crt", 1_000_000.0 + 86400)]
    series = 'gateway_tls_certificate_expiry_seconds{cert_file="a/tls.crt",listener="0.0.0.0_8443"'
    assert f'{series},server="s",tier="tier2"}} 86400.0' in generate_latest(registry).decode()
    clock.advance(86400 + 60)
    assert f'{series},server="s",tier="tier2"}} -60.0' in generate_latest(registry).decode()


def test_tls_doc_expiry_example_is_real_output() -> None:
    """docs/tls.md's series is what the lab's Tier-2 config exports for a 365-day leaf."""
    node = NodeInfo(tier="tier2", cluster_name="cluster-1", cert_dir="certs/lab")
    snapshot = build_snapshot([REPO / "deploy" / "lab" / "tier2"], node).snapshot
    assert snapshot is not None
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier2", wall_clock=lambda: 0.0)
    metrics.tls_certificates = lambda: [
        (listener.name, server.name, server.tls.cert_file, LEAF_VALIDITY.total_seconds())
        for listener in snapshot.listeners
        for server in listener.servers
        if server.tls is not None
    ]
    exported = [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith("gateway_tls_certificate_expiry_seconds{")
    ]
    doc = (REPO / "docs" / "tls.md").read_text(encoding="utf-8")
    shown = [line for line in doc.splitlines() if line.startswith(exported[0].split("{")[0])]
    assert exported == shown


def test_every_metric_the_docs_name_is_exported() -> None:
    """Each ``gateway_*`` metric named in README.md and docs/ is in a scrape (none invented)."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier2")
    metrics.clusters_source = lambda: [SAMPLE]
    metrics.tls_certificates = lambda: [("l", "s", "c", 0.0)]
    metrics.rate_limits = lambda: [("default/rl", 3, 1, 2)]
    metrics.record_request(200, 0.001, ["UF"])
    metrics.record_protocol_error(400)
    metrics.authz.record(False, "istio-system/p", True, ["istio-system/audit"])
    jwt_keys = JwksStore()  # the gateway registers its collector in the same registry
    jwt_keys.record("https://issuer", "")
    jwt_keys.record("https://issuer", "expired")
    jwt_keys._uris["https://issuer/jwks"] = UriState("https://issuer/jwks", 5.0)  # one URI known
    registry.register(jwt_keys.collector("tier2"))
    registry.register(WorkerStats("tier2", lambda: [WorkerHandle(0)]))  # --workers N
    registry.register(TracingCollector("tier2", None))  # the process registers it beside
    text = generate_latest(registry).decode()
    families = list(text_string_to_metric_families(text))
    # Series names, and the family name of a histogram (its _bucket/_sum/_count share it).
    exported = {s.name for f in families for s in f.samples}
    exported |= {f.name for f in families if f.type == "histogram"}
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = {
        name
        for path in docs
        for name in re.findall(r"\bgateway_[a-z0-9_]+", path.read_text(encoding="utf-8"))
        if name not in ("gateway_core", "gateway_lab", "gateway_filters")  # not metrics
    }
    assert "gateway_tls_certificate_expiry_seconds" in named
    assert named - exported == set()


def test_rate_limit_series_per_limit_and_result() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    metrics.rate_limits = lambda: [("default/all", 7, 2, 0), ("shop/per-ip", 1, 0, 5)]
    text = generate_latest(registry).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    rq = "gateway_ratelimit_rq_total"
    tier = ("tier", "tier1")
    assert samples[(rq, (("limit", "default/all"), ("result", "ok"), tier))] == 7
    assert samples[(rq, (("limit", "default/all"), ("result", "rate_limited"), tier))] == 2
    assert samples[("gateway_ratelimit_keys", (("limit", "shop/per-ip"), tier))] == 5
