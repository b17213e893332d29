"""Tests (lab): ``gateway-lab scenario grpc`` and the gRPC client through Tier-1 and Tier-2.

gRPC needs HTTP/2 on every hop: ``gateway-lab up`` in a subprocess, then the scenario and the
client commands exactly as docs/lab.md shows them.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from gateway_lab.demo_pod import GRPC_ROLE
from gateway_lab.scenario_grpc import GRPC_CALLS, SHARE_TOLERANCE
from tests.lab.labkit import RunningLab

pytestmark = pytest.mark.lab


def grpc_pods(lab: RunningLab, cluster: str) -> list[str]:
    return [p.name for p in lab.topology.pod_instances(cluster) if p.role == GRPC_ROLE]


def test_scenario_grpc_balances_each_call_through_both_tiers(
    lab: RunningLab, measured: Callable[[str], None]
) -> None:
    """300 calls over one channel: a third ±10 points per pod via the gateways, all 300 on one
    pod via the TCP relay; the scenario passes."""
    lab.wait_healthy()
    result = lab.cli("scenario", "grpc")
    output = result.stdout + result.stderr
    measured(output)
    assert result.returncode == 0, output
    assert "scenario grpc: PASS" in output
    rows = re.findall(r"^(\S+)\s+(\d+)\s+[\d.]+%\s+(\d+)\s+[\d.]+%$", output, re.M)
    pods = grpc_pods(lab, "cluster-2")
    assert [r[0] for r in rows] == pods, output
    via_gateway = [int(r[1]) for r in rows]
    via_relay = sorted(int(r[2]) for r in rows)
    assert sum(via_gateway) == GRPC_CALLS
    for n in via_gateway:
        assert abs(100 * n / GRPC_CALLS - 100 / len(pods)) <= SHARE_TOLERANCE, via_gateway
    assert via_relay == [0] * (len(pods) - 1) + [GRPC_CALLS]


@pytest.mark.parametrize("method", ["hello", "server-stream", "client-stream", "bidi"])
def test_client_over_tls_reaches_the_selected_cluster(lab: RunningLab, method: str) -> None:
    """Every RPC kind over TLS at Tier-1 (grpc.example.com, lab CA), selector cluster-3:
    every reply comes from a cluster-3 gRPC pod."""
    lab.wait_healthy()
    ca = lab.workdir / "certs" / "ca.crt"
    result = lab.cli(
        "grpc", "call", "--tls", "--cacert", str(ca), "--authority", "grpc.example.com",
        "--selector", "cluster-3", "--method", method, "--count", "4", "127.0.0.1:8443",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    served = re.findall(r"\[pod (\S+), cluster (\S+),", result.stdout)
    assert served and {c for _, c in served} == {"cluster-3"}, result.stdout
    assert {p for p, _ in served} <= set(grpc_pods(lab, "cluster-3"))


def test_client_over_h2c_spreads_unary_calls(lab: RunningLab) -> None:
    """Six unary calls on one plaintext channel, selector cluster-2: every cluster-2 pod serves
    two (round robin at Tier-2)."""
    lab.wait_healthy()
    result = lab.cli(
        "grpc", "call", "--authority", "grpc.example.com", "--selector", "cluster-2",
        "--count", "6", "127.0.0.1:8080",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for pod in grpc_pods(lab, "cluster-2"):
        assert re.search(rf"^  {pod}\s+cluster-2\s+2$", result.stdout, re.M), result.stdout


def test_tier2_health_checks_its_grpc_pods_over_grpc_health_v1(lab: RunningLab) -> None:
    """deploy/lab/tier2/grpc.yaml's DestinationPolicy: cluster-2's Tier-2 gateway probes every
    gRPC pod with grpc.health.v1 Check (demo.v1.Demo) and sees each one SERVING."""
    host, port = lab.topology.cluster("cluster-2").gateway.admin
    pods = grpc_pods(lab, "cluster-2")
    deadline = time.monotonic() + 30
    hosts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://{host}:{port}/clusters", timeout=10) as resp:
            clusters = json.load(resp)
        hosts = next(
            c["hosts"]
            for key, c in clusters.items()
            if key.endswith("|grpc-demo.bookinfo.svc.cluster.local")
        )
        probed = [h["health_check"] for h in hosts if h["health_check"] is not None]
        if len(probed) == len(hosts) == len(pods) and all(
            p["last_status"] == "SERVING" for p in probed
        ):
            break
        time.sleep(0.2)
    assert len(hosts) == len(pods), hosts
    assert all(h["health_check"]["last_status"] == "SERVING" for h in hosts), hosts
    assert not any(h["health_check_failed"] for h in hosts), hosts
