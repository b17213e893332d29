"""Graceful drain: SIGTERM one of two Tier-2 gateways of a cluster under load through Tier-1.

Tier-1 (a real process) speaks TLS to two Tier-2 processes of one cluster and health-checks
them. One Tier-2 gets SIGTERM while a constant GET load runs through Tier-1: its readiness fails
at once, Tier-1 stops sending to it, it stops accepting after the propagation window, finishes
what it has and exits 0. Not one idempotent request may fail.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from certs.generate import generate_lab_certs
from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import (
    GatewayProcess,
    admin_json,
    constant_load,
    wait_for,
)


def tier2_config(port: int, name: str, pod: int) -> str:
    """HTTPS for bookinfo.example.com, routed to one pod; responses name this gateway."""
    rules = f"""  - route: [{{destination: {{host: pod.local}}}}]
    headers:
      response:
        set: {{x-served-by: {name}}}"""
    hosts = "[bookinfo.example.com]"
    return config(
        port,
        rules,
        {"pod.local": [pod]},
        vs_hosts=hosts,
        gateway_hosts=hosts,
        credential="tier2-credential",
    )


TIER2_UPSTREAMS = """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: tier2}}
spec:
  hosts: [tier2.lab]
  ports: [{{number: 8443, name: https, protocol: HTTPS}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{https: {a}}}, labels: {{topology.istio.io/cluster: cluster-1}}}}
  - {{address: 127.0.0.1, ports: {{https: {b}}}, labels: {{topology.istio.io/cluster: cluster-1}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: tier2}}
spec:
  host: tier2.lab
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    tls: {{mode: SIMPLE, caCertificates: {ca}, sni: bookinfo.example.com}}
---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {{name: tier2}}
spec:
  host: tier2.lab
  healthCheck: {{interval: 200ms, timeout: 150ms, unhealthyThreshold: 1, healthyThreshold: 2}}
"""
"""Both Tier-2 gateways as hosts of one cluster, over TLS, health-checked every 200 ms."""


def tier1_config(port: int, a: int, b: int, ca: Path) -> str:
    hosts = "[bookinfo.example.com]"
    return config(
        port,
        "  - route: [{destination: {host: tier2.lab}}]",
        {},
        vs_hosts=hosts,
        gateway_hosts=hosts,
        extra=TIER2_UPSTREAMS.format(a=a, b=b, ca=ca),
    )


async def test_sigterm_one_tier2_under_load_fails_no_request(
    tmp_path: Path, pods: Callable[..., Any], measured: Callable[[str], None]
) -> None:
    """Readiness fails first, Tier-1 moves away, the drained gateway exits 0, zero failures."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    pod = await pods("echo", pod="pod-1")
    ports = {"a": free_port(), "b": free_port(), "edge": free_port()}
    gateways: dict[str, GatewayProcess] = {}
    try:
        for name in ("a", "b"):
            cfg = tmp_path / f"tier2-{name}.yaml"
            cfg.write_text(tier2_config(ports[name], name, pod.port))
            gateways[name] = GatewayProcess(
                "tier2",
                [cfg],
                free_port(),
                tmp_path / f"tier2-{name}.log",
                "--bind-address",
                "127.0.0.1",
                "--cert-dir",
                str(certs),
                "--drain-propagation",
                "1.5",
                "--drain-deadline",
                "5",
            )
        edge_cfg = tmp_path / "tier1.yaml"
        edge_cfg.write_text(tier1_config(ports["edge"], ports["a"], ports["b"], certs / "ca.crt"))
        gateways["edge"] = GatewayProcess(
            "tier1", [edge_cfg], free_port(), tmp_path / "tier1.log", "--bind-address", "127.0.0.1"
        )
        for gw in gateways.values():
            await gw.wait_ready()
        url = f"http://127.0.0.1:{ports['edge']}/echo"
        headers = {"Host": "bookinfo.example.com"}
        async with constant_load(
            url, workers=6, headers=headers, max_seconds=40, keep_bodies=False
        ) as load:
            await asyncio.sleep(1.5)
            before = load.total
            gateways["a"].signal(signal.SIGTERM)
            sent_at = time.monotonic()

            async def a_unhealthy() -> bool:
                state = await admin_json(gateways["edge"], "/clusters")
                hosts = next(iter(state.values()))["hosts"]  # type: ignore[index]
                return any(h["port"] == ports["a"] and not h["healthy"] for h in hosts)

            await wait_for(a_unhealthy, 5, "Tier-1 to mark the draining gateway unhealthy")
            detected = time.monotonic() - sent_at
            exit_code = await asyncio.get_running_loop().run_in_executor(
                None, lambda: gateways["a"].proc.wait(timeout=20)
            )
            exited = time.monotonic() - sent_at
            await asyncio.sleep(1.0)
        served = collections.Counter(await _served_by(url, headers, 20))
    finally:
        for gw in gateways.values():
            gw.stop()
    measured(
        f"drain test: {load.total} requests ({load.total - before} after SIGTERM), "
        f"statuses {dict(load.statuses)}, errors {dict(load.errors)}, "
        f"unhealthy at Tier-1 after {detected:.2f}s, exit {exit_code} after {exited:.2f}s, "
        f"afterwards served by {dict(served)}"
    )
    assert exit_code == 0
    assert load.total - before > 100
    assert load.failures == 0, (load.statuses, load.errors)
    assert served == {"b": 20}


async def _served_by(url: str, headers: dict[str, str], n: int) -> list[str]:
    import aiohttp

    out = []
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            async with s.get(url, headers=headers) as r:
                assert r.status == 200
                out.append(r.headers["x-served-by"])
    return out
