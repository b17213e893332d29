"""Control path: deploy/grafana/multicluster-gateway.json, the Grafana dashboard.

Its JSON parses, each panel has PromQL targets, every expression parses as PromQL (promtool
reads them as recording rules: it has no parse-only command for a bare query), and every metric
it names is one the gateway exports. The lab test (tests/lab/test_prometheus.py) also runs
every expression against a real Prometheus scraping the lab.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway_core.observability.metrics import ClusterSample, GatewayMetrics

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "multicluster-gateway.json"
# What Grafana substitutes before it sends a query (the values the lab test uses too).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$workload": ".*"}
_NAME = re.compile(r"\b((?:istio|gateway)_[a-z_]+)\b")


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def expressions() -> list[str]:
    """Every panel target's PromQL, with Grafana's variables substituted."""
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            out.append(expr)
    return out


def exported_names() -> set[str]:
    """Every sample name the gateway exposes once it has served a request and has a cluster."""
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, "tier1")
    metrics.record_request(200, 0.001, [])
    metrics.clusters_source = lambda: [
        ClusterSample(
            key="c", rq={"2xx": 1}, retries=0, overflow=0, connect_fail=0, connect_timeout=0,
            cx_active=0, rq_active=0, rq_pending=0, ejections_active=0, ejections_total=0,
            hosts=1, healthy_hosts=1,
        )
    ]  # fmt: skip
    istio = metrics.istio
    dest = istio.destination(None, None)
    istio.record_request(dest, "http", 200, None, "-", 1.0, 0, 2)
    istio.tunnel_series(dest).opened += 1
    text = generate_latest(registry).decode()
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_dashboard_is_importable_json_with_the_issue_panels() -> None:
    doc = dashboard()
    assert doc["__inputs"][0]["pluginId"] == "prometheus"
    titles = {p["title"] for p in doc["panels"]}
    for wanted in (
        "Requests per destination cluster",
        "Split between destination clusters",
        "Error ratio by response flag",
        "Latency p50 and p99 per hop",
        "Outlier ejections",
    ):
        assert wanted in titles
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]


def test_every_metric_the_dashboard_uses_is_exported() -> None:
    names = exported_names()
    used = {m for expr in expressions() for m in _NAME.findall(expr)}
    assert used, "the dashboard names no metric"
    assert used <= names, sorted(used - names)
    assert "istio_requests_total" in used and "istio_request_duration_milliseconds_bucket" in used


def test_every_expression_parses_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(expressions())
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    proc = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(expressions())} rules found" in proc.stdout
    # The check is real: a broken expression fails it.
    path.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"record": "x:y", "expr": "sum by (a (rate(istio_requests_total[1m]))"}
    ]}]}))  # fmt: skip
    bad = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode != 0
