"""Observability: the gateway's metrics, rendered in Prometheus text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from gateway_core.observability.metrics import FOLD_EVERY, ClusterSample, GatewayMetrics


def test_requests_flags_and_clusters_are_exposed() -> None:
    """Counters, the duration histogram and cluster gauges appear with their labels."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    metrics.record_request(200, 0.002, [])
    metrics.record_request(404, 0.0001, ["NR"])
    metrics.record_request(503, 0.01, ["UF"])
    metrics.config_version = "abc123"
    metrics.clusters_source = lambda: [
        ClusterSample(
            key="outbound|8443|cluster-1|tier2.lab",
            rq={"2xx": 5, "3xx": 0, "4xx": 0, "5xx": 1},
            retries=2, overflow=1, connect_fail=3, connect_timeout=0, cx_active=4,
            rq_active=1, rq_pending=0, ejections_active=1, ejections_total=2,
            hosts=3, healthy_hosts=2,
        )
    ]  # fmt: skip
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
