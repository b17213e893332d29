"""Functional: Istio's standard metrics on ``/stats/prometheus`` of a real gateway.

The expected names, types and label sets are Istio's own, written out below from its
definitions, not from this project's code:
- https://istio.io/latest/docs/reference/config/metrics/ (metrics, their types, the labels);
- istio/proxy ``source/extensions/filters/http/istio_stats/istio_stats.cc`` (the labels the
  outbound "source" reporter, which gateways use, attaches: 25 for HTTP, the same less
  ``response_code`` and ``grpc_response_status`` for TCP), and its ``testdata/metric/
  client_request_total.yaml.tmpl`` / ``tcp_client_sent_bytes.yaml.tmpl``;
- Envoy's default histogram buckets (``histogram_bucket_settings`` unset: Istio keeps them).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.functional.grpc_pods import EchoClient
from tests.functional.support import config, gateway_yaml, get, service_entry

_SOURCE = [
    "reporter", "source_workload", "source_canonical_service", "source_canonical_revision",
    "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_cluster",
]  # fmt: skip
_DESTINATION = [
    "destination_workload", "destination_workload_namespace", "destination_principal",
    "destination_app", "destination_version", "destination_service",
    "destination_canonical_service", "destination_canonical_revision",
    "destination_service_name", "destination_service_namespace", "destination_cluster",
]  # fmt: skip
ISTIO_HTTP_LABELS = frozenset(
    _SOURCE
    + _DESTINATION
    + [
        "request_protocol",
        "response_code",
        "grpc_response_status",
        "response_flags",
        "connection_security_policy",
    ]
)
ISTIO_TCP_LABELS = frozenset(
    _SOURCE + _DESTINATION + ["request_protocol", "response_flags", "connection_security_policy"]
)
# name (as exposed) -> (Prometheus type, label set); Istio's COUNTER / DISTRIBUTION.
ISTIO_METRICS = {
    "istio_requests_total": ("counter", ISTIO_HTTP_LABELS),
    "istio_request_duration_milliseconds": ("histogram", ISTIO_HTTP_LABELS),
    "istio_request_bytes": ("histogram", ISTIO_HTTP_LABELS),
    "istio_response_bytes": ("histogram", ISTIO_HTTP_LABELS),
    "istio_tcp_sent_bytes_total": ("counter", ISTIO_TCP_LABELS),
    "istio_tcp_received_bytes_total": ("counter", ISTIO_TCP_LABELS),
    "istio_tcp_connections_opened_total": ("counter", ISTIO_TCP_LABELS),
    "istio_tcp_connections_closed_total": ("counter", ISTIO_TCP_LABELS),
}
ENVOY_DEFAULT_BUCKETS = [
    "0.5", "1.0", "5.0", "10.0", "25.0", "50.0", "100.0", "250.0", "500.0", "1000.0", "2500.0",
    "5000.0", "10000.0", "30000.0", "60000.0", "300000.0", "600000.0", "1800000.0", "3600000.0",
    "+Inf",
]  # fmt: skip

RULES = """  - match: [{headers: {x-cluster-selector: {exact: east}}}]
    route: [{destination: {host: svc.example, subset: east}}]
  - route:
    - {destination: {host: svc.example, subset: west}, weight: 100}
"""
RULE = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc.example
  subsets:
  - {name: east, labels: {topology.istio.io/cluster: east}}
  - {name: west, labels: {topology.istio.io/cluster: west}}
"""


async def scrape(admin: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(admin + "/stats/prometheus") as r:
        assert r.status == 200
        return await r.text()


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    ]


async def test_names_types_labels_and_values_as_istio_reports_them(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """Requests routed to two subsets (clusters ``east`` and ``west``), a 404 for an unknown
    host and a WebSocket tunnel give Istio's metrics with Istio's label sets, filled from the
    config; the unknown host and path appear in no label value."""
    east, west = await pods("echo"), await pods("echo")
    port = free_port()
    labels = [
        {"topology.istio.io/cluster": "east", "version": "v2"},
        {"topology.istio.io/cluster": "west", "version": "v1"},
    ]
    yaml = config(
        port,
        RULES,
        {},
        vs_hosts="[app.example.com]",
        extra=service_entry("svc.example", [east.port, west.port], name="svc", labels=labels)
        + RULE,
    )
    harness = await gateway(yaml, workload_name="edge-gateway", cluster_name="hub")
    for _ in range(3):
        assert (await get(port, "/", host="app.example.com")).status == 200
    for _ in range(2):
        resp = await get(port, "/", host="app.example.com", headers={"x-cluster-selector": "east"})
        assert resp.status == 200
    assert (await get(port, "/secret-path-x1", host="nobody.invalid")).status == 404
    assert (await get(port, "/healthz/ready", host="app.example.com")).status == 200  # no traffic
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            f"http://127.0.0.1:{port}/ws", headers={"Host": "app.example.com"}
        ) as ws,
    ):
        await ws.send_str("hello")
        assert (await ws.receive(timeout=5)).data == "hello"
    text = await scrape(harness.admin)

    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, label_set) in ISTIO_METRICS.items():
        base = name.removesuffix("_total") if kind == "counter" else name
        family = families[base]
        assert family.type == kind, name
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            assert set(sample.labels) - {"le"} == label_set, (sample.name, sorted(sample.labels))
    buckets = [
        s.labels["le"]
        for s in families["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets[: len(ENVOY_DEFAULT_BUCKETS)] == ENVOY_DEFAULT_BUCKETS

    requests = samples(text, "istio_requests_total")
    by_cluster: dict[str, float] = {}
    for lbl, value in requests:
        by_cluster[lbl["destination_cluster"]] = (
            by_cluster.get(lbl["destination_cluster"], 0) + value
        )
    assert by_cluster == {"west": 4.0, "east": 2.0, "unknown": 1.0}  # west: 3 GETs + the tunnel
    west = next(
        lbl
        for lbl, _ in requests
        if lbl["destination_cluster"] == "west" and lbl["response_code"] == "200"
    )
    assert west["reporter"] == "source"
    assert west["source_workload"] == "edge-gateway"
    assert west["source_cluster"] == "hub"
    assert west["destination_service"] == "svc.example"
    assert west["destination_service_name"] == "svc.example"
    assert west["destination_workload"] == "svc"  # Istio names it after the ServiceEntry
    assert west["destination_version"] == "v1"
    assert west["request_protocol"] == "http"
    assert west["response_code"] == "200"
    assert west["response_flags"] == "-"
    assert west["grpc_response_status"] == ""
    assert west["connection_security_policy"] == "unknown"
    (nr,) = [lbl for lbl, _ in requests if lbl["response_flags"] == "NR"]
    assert nr["response_code"] == "404"
    assert nr["destination_service"] == "unknown"
    assert "nobody.invalid" not in text and "secret-path-x1" not in text

    def tcp(name: str) -> float:
        ((lbl, value),) = samples(text, name)
        assert lbl["destination_cluster"] == "west" and lbl["request_protocol"] == "tcp"
        return value

    assert tcp("istio_tcp_connections_opened_total") == 1.0
    assert tcp("istio_tcp_connections_closed_total") == 1.0
    assert tcp("istio_tcp_sent_bytes_total") >= len("hello")
    assert tcp("istio_tcp_received_bytes_total") >= len("hello")
    upgraded = [lbl for lbl, _ in requests if lbl["response_code"] == "101"]
    assert [lbl["destination_cluster"] for lbl in upgraded] == ["west"]


async def test_grpc_status_label(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any]
) -> None:
    """gRPC calls are ``request_protocol="grpc"`` with the status from the response's trailers."""
    (pod,) = await grpc_pods(1)
    port = free_port()
    route = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: echo.grpc.local}}]
"""
    yaml = (
        gateway_yaml(port) + route + service_entry("echo.grpc.local", [pod.port], protocol="GRPC")
    )
    harness = await gateway(yaml)
    client = EchoClient(f"127.0.0.1:{port}")
    try:
        assert await client.unary(b"hi", timeout=10) == b"pod0:hi"
        with pytest.raises(grpc.aio.AioRpcError):
            await client.unary(b"x", metadata=(("fail-with", "NOT_FOUND"),), timeout=10)
    finally:
        await client.close()
    text = await scrape(harness.admin)
    got = {
        (lbl["request_protocol"], lbl["response_code"], lbl["grpc_response_status"]): value
        for lbl, value in samples(text, "istio_requests_total")
    }
    assert got == {("grpc", "200", "0"): 1.0, ("grpc", "200", "5"): 1.0}


async def test_promtool_check_metrics(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """``promtool check metrics`` accepts the exposition; its only remark is the one it makes
    about Istio's own name ``istio_request_duration_milliseconds`` (a unit other than seconds),
    which the gateway keeps so that Istio dashboards work."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    pod = await pods("echo")
    port = free_port()
    harness = await gateway(
        config(port, "  - route: [{destination: {host: svc.example}}]", {"svc.example": [pod.port]})
    )
    assert (await get(port, "/")).status == 200
    text = await scrape(harness.admin)
    assert "istio_requests_total{" in text
    # The loop's own subprocess support, not subprocess.run in a thread: under uvloop a worker
    # thread left waiting on a child once kept the loop from closing.
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(text.encode()), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    remarks = [ln for ln in (out + err).decode().splitlines() if ln.strip()]
    assert proc.returncode in (0, 3), remarks  # 3: lint remarks only, the text parsed
    assert remarks == [
        'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"'
    ]
