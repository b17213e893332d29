"""Lab: Debian's ``prometheus`` scrapes the embedded lab's gateways; PromQL over Istio's
metrics returns the split the test's traffic produced, and every expression of the shipped
Grafana dashboard runs on that server.

Traffic goes through Tier-1 with ``X-CLUSTER-SELECTOR`` in a known 3:2:1 proportion, in
batches; after each batch the test waits (bounded) until Prometheus has scraped it, so the rate
window holds several samples.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.test_grafana_dashboard import expressions
from tests.lab.labkit import RunningLab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(
        shutil.which("prometheus") is None,
        reason="the prometheus binary is not installed (Debian package prometheus; "
        ".ci/run installs it)",
    ),
]

HOST = "bookinfo.example.com"
SPLIT = {"cluster-1": 3, "cluster-2": 2, "cluster-3": 1}
BATCHES = 4
ROUNDS_PER_BATCH = 10
WAIT = 60.0


class Prometheus:
    """A ``prometheus`` process on a free loopback port, with its own data directory."""

    def __init__(self, workdir: Path, scrape_configs: list[dict[str, Any]]) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs,
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"prometheus not ready in {WAIT}s:\n{self.log.read_text()[-3000:]}")

    def query(self, expr: str) -> dict[str, Any]:
        """The API's answer to an instant query (``status`` is "success" or "error")."""
        url = self.url("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as err:  # 400 for a query that does not parse
            body = json.load(err)
        return body

    def vector(self, expr: str, by: str) -> dict[str, float]:
        answer = self.query(expr)
        assert answer["status"] == "success", answer
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in answer["data"]["result"]}

    def wait_for(self, expr: str, by: str, want: dict[str, float]) -> dict[str, float]:
        deadline = time.monotonic() + WAIT
        got: dict[str, float] = {}
        while time.monotonic() < deadline:
            got = self.vector(expr, by)
            if got == want:
                return got
            time.sleep(0.25)
        pytest.fail(f"{expr}: wanted {want}, Prometheus says {got}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def prometheus(lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    topology = lab.topology

    def target(admin: tuple[str, int]) -> str:
        return f"{admin[0]}:{admin[1]}"

    jobs = [
        ("tier1", [target(topology.tier1.admin)]),
        ("tier2", [target(c.gateway.admin) for c in topology.clusters]),
    ]
    scrape = [
        {"job_name": job, "metrics_path": "/stats/prometheus", "static_configs": [{"targets": t}]}
        for job, t in jobs
    ]
    server = Prometheus(tmp_path_factory.mktemp("prometheus"), scrape)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def send(lab: RunningLab, cluster: str, conn: http.client.HTTPConnection) -> None:
    conn.request("GET", "/user", headers={"Host": HOST, "X-CLUSTER-SELECTOR": cluster})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 200, f"{cluster}: {resp.status}\n{lab.diagnostics()}"


def test_split_by_destination_cluster(lab: RunningLab, prometheus: Prometheus) -> None:
    """``sum by (destination_cluster) (rate(istio_requests_total[1m]))`` at Tier-1 gives the
    3:2:1 split the traffic had; the counters are exact; each Tier-2 reports its own cluster."""
    lab.wait_healthy()
    host, _ = lab.topology.tier1.admin
    port = lab.topology.tier1.port_for("HTTP")
    assert port is not None
    per_round = [c for c, n in SPLIT.items() for _ in range(n)]
    sent = dict.fromkeys(SPLIT, 0.0)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for _ in range(BATCHES):
            for _ in range(ROUNDS_PER_BATCH):
                for cluster in per_round:
                    send(lab, cluster, conn)
                    sent[cluster] += 1
            prometheus.wait_for(
                'sum by (destination_cluster) (istio_requests_total{job="tier1"})',
                "destination_cluster",
                sent,
            )
    finally:
        conn.close()

    rates = prometheus.vector(
        'sum by (destination_cluster) (rate(istio_requests_total{job="tier1"}[1m]))',
        "destination_cluster",
    )
    assert set(rates) == set(SPLIT), rates
    total = sum(rates.values())
    for cluster, weight in SPLIT.items():
        share = rates[cluster] / total
        assert abs(share - weight / sum(SPLIT.values())) < 0.03, (cluster, rates)

    labels = prometheus.query('istio_requests_total{job="tier1",destination_cluster="cluster-2"}')
    (series,) = labels["data"]["result"]
    metric = series["metric"]
    assert metric["reporter"] == "source"
    assert metric["source_workload"] == "tier1-gateway"
    assert metric["destination_service"] == "tier2.lab"
    assert metric["response_code"] == "200" and metric["response_flags"] == "-"
    # One hop down: each Tier-2 counts the same requests towards its own cluster's pods.
    prometheus.wait_for(
        'sum by (destination_cluster) (istio_requests_total{job="tier2",'
        'destination_service=~"user.*"})',
        "destination_cluster",
        sent,
    )


def test_every_dashboard_expression_runs(lab: RunningLab, prometheus: Prometheus) -> None:
    """Each PromQL expression of deploy/grafana's dashboard is accepted by Prometheus, and the
    requests-per-cluster panel shows the lab's clusters (traffic of the test above)."""
    for expr in expressions():
        answer = prometheus.query(expr)
        assert answer["status"] == "success", (expr, answer)
    per_cluster = prometheus.vector(expressions()[0], "destination_cluster")
    assert set(SPLIT) <= set(per_cluster), per_cluster
