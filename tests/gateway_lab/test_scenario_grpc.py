"""Tests: the ``grpc`` scenario — its verdicts on given counts, and its legs over real sockets."""

from __future__ import annotations

import contextlib
import io
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway_lab.control import ControlClient
from gateway_lab.demo_pod import PodConfig
from gateway_lab.grpc_client import ChannelSpec, open_channel
from gateway_lab.grpc_pod import GrpcPod, start_grpc_pod
from gateway_lab.pods import start_group, stop_group
from gateway_lab.scenario_grpc import GRPC_CALLS, Leg, grpc_balancing, judge, table_rows, unary_leg
from gateway_lab.scenario_kit import LabContext
from gateway_lab.tcp_relay import TcpRelay
from gateway_lab.topology import Topology, load_topology

PODS = ["grpc-demo-v1-0", "grpc-demo-v1-1", "grpc-demo-v1-2"]


def leg(name: str, *counts: int, error: str | None = None) -> Leg:
    return Leg(name, Counter(dict(zip(PODS, counts, strict=False))), error)


def verdicts(gateway: Leg, relay: Leg, calls: int = 300) -> list[bool]:
    return [c.ok for c in judge(PODS, gateway, relay, calls)]


def test_even_gateway_and_one_pod_relay_pass() -> None:
    """100/100/100 via the gateway and 300/0/0 via the relay: every check passes."""
    checks = judge(PODS, leg("gateway", 100, 100, 100), leg("relay", 0, 300, 0), 300)
    assert [c.ok for c in checks] == [True, True, True, True]
    assert [c.what for c in checks] == [
        "via gateway: 300/300 calls answered",
        "via gateway: each of 3 pods 33.3% ±10",
        "via relay: 300/300 calls answered",
        "via relay: one pod served 300/300",
    ]


def test_gateway_shares_within_ten_points_of_a_third() -> None:
    """130/85/85 (43.3%) passes; 131/85/84 (43.7%) and 140/80/80 do not."""
    relay = leg("relay", 300)
    assert verdicts(leg("gateway", 130, 85, 85), relay)[1]
    assert not verdicts(leg("gateway", 131, 85, 84), relay)[1]
    assert not verdicts(leg("gateway", 140, 80, 80), relay)[1]
    assert not verdicts(leg("gateway", 300, 0, 0), relay)[1]


def test_relay_must_put_every_call_on_one_pod() -> None:
    """299/1 is not 'all on one pod'; 300 spread evenly is not either."""
    gateway = leg("gateway", 100, 100, 100)
    assert verdicts(gateway, leg("relay", 299, 1))[2:] == [True, False]
    assert verdicts(gateway, leg("relay", 100, 100, 100))[2:] == [True, False]


def test_a_failed_leg_fails_even_with_good_counts() -> None:
    """An error, or fewer answers than calls, fails that leg's checks."""
    failed = leg("gateway", 0, 0, 0, error="UNAVAILABLE: http1.x server")
    assert verdicts(failed, leg("relay", 300)) == [False, False, True, True]
    short = leg("gateway", 90, 90, 90)
    assert verdicts(short, leg("relay", 300)) == [False, False, True, True]
    assert verdicts(leg("gateway", 100, 100, 100), leg("relay", 0, 0, 0, error="x"))[2:] == [
        False,
        False,
    ]


def test_table_has_every_pod_and_strangers_last() -> None:
    """Rows for the three pods in order, then any other pod that answered, with shares."""
    gateway = Leg("gateway", Counter({"grpc-demo-v1-0": 150, "grpc-demo-v1-2": 140, "x-0": 10}))
    relay = Leg("relay", Counter({"grpc-demo-v1-1": 300}))
    assert table_rows(PODS, gateway, relay, 300) == [
        ["grpc-demo-v1-0", 150, "50.0%", 0, "0.0%"],
        ["grpc-demo-v1-1", 0, "0.0%", 300, "100.0%"],
        ["grpc-demo-v1-2", 140, "46.7%", 0, "0.0%"],
        ["x-0", 10, "3.3%", 0, "0.0%"],
    ]


@pytest.fixture
async def three_pods() -> AsyncIterator[list[GrpcPod]]:
    pods = [
        await start_grpc_pod(PodConfig(role="grpc", cluster="cluster-2", pod=name)) for name in PODS
    ]
    try:
        yield pods
    finally:
        for pod in pods:
            await pod.cleanup(grace=0.5)


async def test_relay_leg_puts_all_300_calls_on_one_pod(three_pods: list[GrpcPod]) -> None:
    """One grpcio channel -> TCP relay -> three real pods: one connection, one pod, 300 calls."""
    relay = TcpRelay([("127.0.0.1", p.port) for p in three_pods])
    host, port = await relay.start()
    channel = open_channel(ChannelSpec(f"{host}:{port}"))
    try:
        measured = await unary_leg("relay", channel, GRPC_CALLS)
    finally:
        await channel.close()
        await relay.close()
    assert measured.error is None
    assert list(measured.counts.values()) == [GRPC_CALLS]
    assert sum(relay.connections.values()) == 1
    assert sorted(p.demo.calls for p in three_pods) == [0, 0, GRPC_CALLS]


async def _http1_only(request: web.Request) -> web.Response:
    return web.Response(status=400, text="HTTP/1.1 only\n")


@pytest.fixture
async def http1_gateway() -> AsyncIterator[int]:
    """A stand-in for a gateway that speaks HTTP/1.1 only (today's Tier-1)."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _http1_only)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def distinct_ports(n: int) -> list[int]:
    """``n`` free loopback ports, all different (held open together while they are picked)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def lab_topology(tmp: Path, tier1_port: int, pod_ports: list[int]) -> Path:
    """A topology with Tier-1's HTTP listener on ``tier1_port``, gRPC pods in cluster-2."""
    (tmp / "t1").mkdir()
    (tmp / "t2").mkdir()
    (tmp / "t1" / "gateway.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\n"
        "metadata: {name: tier1-gateway, namespace: tier1}\n"
        f"spec:\n  servers:\n  - port: {{number: {tier1_port}, name: http, protocol: HTTP}}\n"
        "    hosts: [grpc.example.com]\n"
    )
    entries = "".join(
        f"    - {{service: grpc-demo, role: grpc, version: v{i}, dns: g{i}.lab, "
        f"addresses: [127.0.0.1], port: {port}}}\n"
        for i, port in enumerate(pod_ports)
    )
    taken = {tier1_port, *pod_ports}
    dns, control, admin1, admin2 = [p for p in distinct_ports(4 + len(taken)) if p not in taken][:4]
    path = tmp / "topology.yaml"
    path.write_text(
        f"dns: {{listen: '127.0.0.1:{dns}'}}\n"
        f"control: '127.0.0.1:{control}'\n"
        f"tier1: {{address: 127.0.0.1, admin: '127.0.0.1:{admin1}', config: [t1]}}\n"
        "clusters:\n  cluster-2:\n"
        f"    gateway: {{address: 127.0.0.1, admin: '127.0.0.1:{admin2}'}}\n"
        f"    config: [t2]\n    pods:\n{entries}"
    )
    return path


async def test_scenario_reports_a_gateway_without_http2_and_still_measures_the_relay(
    tmp_path: Path, http1_gateway: int, measured: Callable[[str], None]
) -> None:
    """Leg (a) against an HTTP/1.1-only listener: the gRPC status and details are printed, the
    scenario fails (1) without raising, and leg (b) still measures 300 calls on one pod."""
    ports = [p for p in distinct_ports(5) if p != http1_gateway][:3]
    topology = load_topology(lab_topology(tmp_path, http1_gateway, ports))
    instances = topology.pod_instances("cluster-2")
    names = [p.name for p in instances]
    runners = await start_group(instances)  # as the lab's pod group starts them
    out = io.StringIO()
    try:
        code = await _run_scenario(topology, tmp_path, out)
    finally:
        await stop_group(runners)
    text = out.getvalue()
    measured(text)
    assert code == 1, text
    assert "via gateway: a call failed after 0 answers: UNAVAILABLE: " in text
    assert f"  127.0.0.1:{http1_gateway} answered in HTTP/1.1: gRPC needs HTTP/2" in text
    assert "via gateway: 0/300 calls answered: OFF" in text
    assert "via relay: 300/300 calls answered: ok" in text
    assert "via relay: one pod served 300/300: ok" in text
    rows = [ln.split() for ln in text.splitlines() if ln.startswith("grpc-demo-")]
    assert [r[0] for r in rows] == names
    assert sorted(r[3] for r in rows) == ["0", "0", "300"]


async def _run_scenario(topology: Topology, workdir: Path, out: io.StringIO) -> int:
    async with aiohttp.ClientSession() as session:
        ctx = LabContext(
            topology=topology,
            workdir=workdir,
            control=ControlClient(topology.control),
            session=session,
            requests=GRPC_CALLS,
            out=out,
        )
        return await grpc_balancing(ctx)
