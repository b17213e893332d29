"""Tests: merging a supervisor's and its workers' metric families into one exposition."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import Metric

from gateway_core.observability.merge import Retired, merge_families
from gateway_core.observability.metrics import GatewayMetrics


def _values(families: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def _process(requests: int, cx: int, version: str, *, supervisor: bool = False) -> list[Metric]:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier2")
    for _ in range(requests):
        metrics.record_request(200, 0.002, ())
    metrics.downstream_cx_active = lambda: cx
    metrics.config_version = version
    if supervisor:
        metrics.config_reloads["success"] = 1
    return list(registry.collect())


def test_counters_add_up_and_gauges_follow_the_supervisor_or_the_workers() -> None:
    own = _process(0, 0, "v2", supervisor=True)
    workers = [_process(3, 2, "v2"), _process(4, 5, "v1")]
    merged = _values(merge_families(own, workers))
    rq = ("gateway_downstream_rq_total", (("code_class", "2xx"), ("tier", "tier2")))
    assert merged[rq] == 7
    bucket = ("gateway_downstream_rq_time_seconds_bucket", (("le", "0.0025"), ("tier", "tier2")))
    assert merged[bucket] == 7
    count = ("gateway_downstream_rq_time_seconds_count", (("tier", "tier2"),))
    assert merged[count] == 7
    # Open connections exist only in workers (the supervisor's 0 does not hide them).
    assert merged[("gateway_downstream_cx_active", (("tier", "tier2"),))] == 7
    # The version the supervisor reports is its own; the lagging worker shows beside it.
    info = "gateway_config_info"
    assert merged[(info, (("tier", "tier2"), ("version", "v2")))] == 1
    assert merged[(info, (("tier", "tier2"), ("version", "v1")))] == 1
    reloads = ("gateway_config_reloads_total", (("result", "success"), ("tier", "tier2")))
    assert merged[reloads] == 1  # counted once, by the supervisor


def test_client_library_metrics_merge_generically() -> None:
    """Metrics declared with prometheus-client's own classes (as other modules may add) merge
    by type too: counters add, ``_created`` takes the earliest, histograms add per bucket."""

    def proc(n: int, gauge: float) -> list[Metric]:
        registry = CollectorRegistry()
        c = Counter("istio_requests", "r", ["code"], registry=registry)
        c.labels("200").inc(n)
        Gauge("some_level", "g", registry=registry).set(gauge)
        Histogram("dur", "d", buckets=(1.0,), registry=registry).observe(0.5)
        return list(registry.collect())

    a, b = proc(2, 1.0), proc(5, 2.0)
    merged = _values(merge_families([], [a, b]))
    assert merged[("istio_requests_total", (("code", "200"),))] == 7
    created = [s.value for f in a + b for s in f.samples if s.name == "istio_requests_created"]
    assert merged[("istio_requests_created", (("code", "200"),))] == min(created)
    assert merged[("some_level", ())] == 3.0
    assert merged[("dur_bucket", (("le", "1.0"),))] == 2
    names = [f.name for f in merge_families([], [a, b])]
    assert len(names) == len(set(names))


def test_a_departed_worker_keeps_its_counts_but_not_its_gauges() -> None:
    retired = Retired()
    retired.add(_process(5, 3, "v1"))
    retired.add(_process(2, 1, "v1"))
    merged = _values(merge_families(_process(0, 0, "v1", supervisor=True), [retired.families()]))
    assert merged[("gateway_downstream_rq_total", (("code_class", "2xx"), ("tier", "tier2")))] == 7
    assert merged[("gateway_downstream_cx_active", (("tier", "tier2"),))] == 0
