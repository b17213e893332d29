"""Control path: how Prometheus finds the gateways in Kubernetes (deploy/k8s, deploy/prometheus).

The rendered gateway pods carry the ``prometheus.io/*`` annotations naming the admin port and
``/stats/prometheus``; deploy/prometheus/kubernetes-scrape.yaml keeps exactly such pods and
scrapes that port and path; the PodMonitor (Prometheus Operator) selects the same pods on the
named admin port. Each gateway names itself in Istio's metrics after its Deployment and
namespace.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_k8s_manifests import ADMIN_PORT, OVERLAYS, Obj, container, one, render

REPO = Path(__file__).resolve().parents[2]
SCRAPE = REPO / "deploy" / "prometheus" / "kubernetes-scrape.yaml"
PODMONITOR = REPO / "deploy" / "k8s" / "monitoring" / "podmonitor.yaml"
META = "__meta_kubernetes_pod_"


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    name: str = request.param
    return name, render(OVERLAYS[name])


def relabel(rules: list[dict[str, Any]], source: str) -> dict[str, Any]:
    (rule,) = [r for r in rules if r["source_labels"][-1] == source]
    return rule


def test_pods_are_annotated_for_scraping(overlay: tuple[str, list[Obj]]) -> None:
    _, objects = overlay
    template = one(objects, "Deployment")["spec"]["template"]
    notes = template["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/path"] == "/stats/prometheus"
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    assert int(notes["prometheus.io/port"]) == ports["admin"] == ADMIN_PORT
    args = container(objects)["args"]
    assert f"--admin-address=0.0.0.0:{ADMIN_PORT}" in args


def test_scrape_config_keeps_the_annotated_gateway_pods(overlay: tuple[str, list[Obj]]) -> None:
    """The relabelling keeps a pod by its annotation and name label and takes port and path
    from the annotations: applied to the rendered pod, it yields the admin endpoint."""
    tier, objects = overlay
    config = yaml.safe_load(SCRAPE.read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    rules = job["relabel_configs"]
    template = one(objects, "Deployment")["spec"]["template"]["metadata"]
    notes, labels = template["annotations"], template["labels"]
    keep = relabel(rules, f"{META}annotation_prometheus_io_scrape")
    assert keep["action"] == "keep" and keep["regex"] == notes["prometheus.io/scrape"]
    name = relabel(rules, f"{META}label_app_kubernetes_io_name")
    assert name["action"] == "keep" and name["regex"] == labels["app.kubernetes.io/name"]
    path = relabel(rules, f"{META}annotation_prometheus_io_path")
    assert path["target_label"] == "__metrics_path__"
    port = relabel(rules, f"{META}annotation_prometheus_io_port")
    assert port["target_label"] == "__address__"
    joined = f"10.0.0.7:8080;{notes['prometheus.io/port']}"
    address = re.sub(f"^(?:{port['regex']})$", port["replacement"].replace("$", "\\"), joined)
    assert address == f"10.0.0.7:{ADMIN_PORT}"
    job_label = relabel(rules, f"{META}label_app_kubernetes_io_component")
    assert job_label["target_label"] == "job" and labels["app.kubernetes.io/component"] == tier


def test_scrape_config_passes_promtool(tmp_path: Path) -> None:
    """promtool checks the job; Debian's Prometheus is built without Kubernetes discovery, so
    the check runs on a copy whose discovery is a static target (everything else unchanged)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    config = yaml.safe_load(SCRAPE.read_text())
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["static_configs"] = [{"targets": ["gateway:15000"]}]
    path = tmp_path / "scrape.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_podmonitor_selects_the_gateway_pods(overlay: tuple[str, list[Obj]]) -> None:
    _, objects = overlay
    monitor = yaml.safe_load(PODMONITOR.read_text())
    assert (monitor["apiVersion"], monitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in container(objects)["ports"]}
    assert endpoint["port"] in ports and endpoint["port"] == "admin"
    assert endpoint["path"] == "/stats/prometheus"


def test_gateway_names_itself_after_its_deployment(overlay: tuple[str, list[Obj]]) -> None:
    """``--workload-name`` expands to the Deployment's name, ``--namespace`` to the pod's."""
    _, objects = overlay
    deployment = one(objects, "Deployment")
    c = container(objects)
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in c["env"] if "valueFrom" in e}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert env["GATEWAY_COMPONENT"] == "metadata.labels['app.kubernetes.io/component']"
    assert env["POD_NAMESPACE"] == "metadata.namespace"
    assert "--workload-name=$(GATEWAY_COMPONENT)-gateway" in c["args"]
    assert "--namespace=$(POD_NAMESPACE)" in c["args"]
    expanded = f"{labels['app.kubernetes.io/component']}-gateway"
    assert expanded == deployment["metadata"]["name"]
