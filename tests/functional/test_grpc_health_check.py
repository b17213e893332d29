"""Functional: gRPC active health checks (``grpc.health.v1``) run by real gateways on 127.0.0.1
against real grpcio pods: a NOT_SERVING pod is taken out of rotation after the threshold and
comes back when SERVING again; Tier-1 probes a Tier-2 gateway over TLS with ALPN h2, and the
authority decides which Tier-2 route answers the probe."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.grpc_pods import SERVICE, EchoClient
from tests.functional.support import gateway_yaml, lab_certs, service_entry

ECHO = "outbound|80||echo.grpc.local"


def _route(vs_hosts: str = '["*"]') -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: grpc}}
spec:
  hosts: {vs_hosts}
  gateways: [gw]
  http:
  - route: [{{destination: {{host: echo.grpc.local}}}}]
"""


def _health_policy(host: str, grpc: str, *, name: str | None = None) -> str:
    """A DestinationPolicy whose gRPC health check runs every 300 ms (timeout 250 ms), with
    Envoy's default thresholds of 2."""
    return f"""---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {{name: {name or host.replace(".", "-")}}}
spec:
  host: {host}
  healthCheck:
    grpc: {grpc}
    interval: 300ms
    timeout: 250ms
    unhealthyThreshold: 2
    healthyThreshold: 2
"""


async def _hosts(admin: str, cluster: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(admin + "/clusters") as r:
        hosts: list[dict[str, Any]] = (await r.json())[cluster]["hosts"]
        return hosts


async def _wait_for(
    admin: str,
    cluster: str,
    condition: Callable[[list[dict[str, Any]]], bool],
    within: float = 10.0,
) -> list[dict[str, Any]]:
    """Poll ``/clusters`` every 50 ms until ``condition(hosts)`` holds; fail after ``within``
    seconds."""
    hosts: list[dict[str, Any]] = []
    for _ in range(int(within / 0.05)):
        hosts = await _hosts(admin, cluster)
        if condition(hosts):
            return hosts
        await asyncio.sleep(0.05)
    raise AssertionError(f"{cluster} never reached the state; last seen {hosts}")


def _by_port(hosts: list[dict[str, Any]], port: int) -> dict[str, Any]:
    return next(h for h in hosts if h["port"] == port)


def _all_probed_serving(hosts: list[dict[str, Any]]) -> bool:
    return bool(hosts) and all(
        h["health_check"] is not None and h["health_check"]["last_status"] == "SERVING"
        for h in hosts
    )


async def _pods_hit(client: EchoClient, calls: int) -> collections.Counter[bytes]:
    counts: collections.Counter[bytes] = collections.Counter()
    for i in range(calls):
        reply = await client.unary(b"%d" % i, timeout=10)
        counts[reply.split(b":")[0]] += 1
    return counts


async def test_not_serving_pod_leaves_rotation_and_returns(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any]
) -> None:
    """Tier-2 probes its pods with ``Health/Check``: all stay healthy while SERVING; a pod set
    NOT_SERVING is marked after two failed rounds and gets no more calls; SERVING again, it is
    back after two passing rounds and gets calls again."""
    pods = await grpc_pods(3)
    port = free_port()
    yaml = (
        gateway_yaml(port)
        + _route()
        + service_entry("echo.grpc.local", [p.port for p in pods], protocol="GRPC")
        + _health_policy("echo.grpc.local", f"{{serviceName: {SERVICE}}}")
    )
    harness = await gateway(yaml)
    admin = harness.admin
    await _wait_for(admin, ECHO, _all_probed_serving)
    client = EchoClient(f"127.0.0.1:{port}")
    sick = pods[2]
    try:
        assert set(await _pods_hit(client, 30)) == {b"pod0", b"pod1", b"pod2"}

        await sick.set_serving(False)
        hosts = await _wait_for(
            admin, ECHO, lambda hs: _by_port(hs, sick.port)["health_check_failed"]
        )
        state = _by_port(hosts, sick.port)["health_check"]
        assert state["last_status"] == "NOT_SERVING"
        assert state["last_error"] == "grpc.health.v1 status NOT_SERVING"
        assert state["failures"] >= 2
        assert not any(h["health_check_failed"] for h in hosts if h["port"] != sick.port)
        before = sick.calls
        counts = await _pods_hit(client, 60)
        assert sick.calls == before
        assert set(counts) == {b"pod0", b"pod1"}, counts

        await sick.set_serving(True)
        hosts = await _wait_for(
            admin, ECHO, lambda hs: not _by_port(hs, sick.port)["health_check_failed"]
        )
        assert _by_port(hosts, sick.port)["health_check"]["successes"] >= 2
        assert set(await _pods_hit(client, 30)) == {b"pod0", b"pod1", b"pod2"}
    finally:
        await client.close()


async def test_tier1_probes_tier2_over_tls_with_the_authority(
    gateway: Callable[..., Any], grpc_pods: Callable[[int], Any], tmp_path: Path
) -> None:
    """Tier-1 checks a Tier-2 gateway over TLS (lab CA, SNI bookinfo.example.com, ALPN h2): the
    probe's authority picks Tier-2's route, so ``echo.example.com`` reaches a pod and passes
    while an authority no route serves gets UNIMPLEMENTED and fails; pods turning NOT_SERVING
    fail the Tier-2 host too."""
    pki = lab_certs(tmp_path / "pki")
    pods = await grpc_pods(2)
    t2_port = free_port()
    await gateway(
        gateway_yaml(t2_port, credential="bookinfo-credential")
        + _route("[echo.example.com]")
        + service_entry("echo.grpc.local", [p.port for p in pods], protocol="GRPC"),
        cert_dir=str(pki),
    )
    t1_port = free_port()
    tls = f"{{mode: SIMPLE, caCertificates: {pki / 'ca.crt'}, sni: bookinfo.example.com}}"
    # Clusters exist for routed hosts only: /wrong/ keeps the second one built.
    t1_yaml = (
        gateway_yaml(t1_port)
        + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tier2}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /wrong/}}]
    route: [{destination: {host: wrong.local}}]
  - route: [{destination: {host: tier2.local}}]
"""
    )
    for host, authority in (("tier2.local", "echo.example.com"), ("wrong.local", "nowhere.test")):
        t1_yaml += (
            service_entry(host, [t2_port], protocol="HTTP2")
            + f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {host.split(".")[0]}}}
spec:
  host: {host}
  trafficPolicy:
    tls: {tls}
"""
            + _health_policy(host, f"{{serviceName: {SERVICE}, authority: {authority}}}")
        )
    tier1 = await gateway(t1_yaml, tier="tier1")
    good, wrong = "outbound|80||tier2.local", "outbound|80||wrong.local"
    await _wait_for(tier1.admin, good, _all_probed_serving)
    hosts = await _wait_for(tier1.admin, wrong, lambda hs: hs[0]["health_check_failed"])
    assert hosts[0]["health_check"]["last_error"].startswith("UNIMPLEMENTED: ")

    for pod in pods:
        await pod.set_serving(False)
    hosts = await _wait_for(tier1.admin, good, lambda hs: hs[0]["health_check_failed"])
    assert hosts[0]["health_check"]["last_status"] == "NOT_SERVING"
    for pod in pods:
        await pod.set_serving(True)
    await _wait_for(tier1.admin, good, lambda hs: not hs[0]["health_check_failed"])
