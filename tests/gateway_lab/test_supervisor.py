"""The supervisor over a one-cluster lab on free 127.0.0.1 ports: start, stop, and failures."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from pathlib import Path

import aiohttp
import pytest

from gateway_core.utils.tasks import spawn
from gateway_lab.commands import dashboard_urls, lab_commands
from gateway_lab.supervisor import Supervisor
from gateway_lab.topology import load_topology
from tests.conftest import free_port

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: lab}}
spec:
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
"""
BROKEN_VS = """\
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: lab}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - redirect: {uri: /x, redirectCode: 200}
"""


def mini_lab(root: Path, *, broken: bool = False) -> tuple[Path, dict[str, int]]:
    ports = {name: free_port() for name in ("dns", "control", "t1", "t1_admin", "t2", "t2_admin")}
    ports["pod"] = free_port()
    for folder, port in (("t1", ports["t1"]), ("c1", ports["t2"])):
        (root / folder).mkdir()
        text = GATEWAY.format(port=port) + (BROKEN_VS if broken and folder == "c1" else "")
        (root / folder / "gateway.yaml").write_text(text)
    topology = root / "topology.yaml"
    topology.write_text(
        f"dns: {{listen: '127.0.0.1:{ports['dns']}'}}\n"
        f"control: '127.0.0.1:{ports['control']}'\n"
        f"tier1: {{address: 127.0.0.1, admin: '127.0.0.1:{ports['t1_admin']}', config: [t1]}}\n"
        "clusters:\n"
        "  c1:\n"
        "    locality: r1/z1\n"
        f"    gateway: {{address: 127.0.0.1, admin: '127.0.0.1:{ports['t2_admin']}',"
        " dns: tier2.c1.lab}\n"
        "    config: [c1]\n"
        "    pods:\n"
        "    - {service: echo, role: echo, dns: echo.c1.lab, addresses: [127.0.0.1],"
        f" port: {ports['pod']}}}\n"
    )
    return topology, ports


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def until_ready(sup: Supervisor, task: asyncio.Task[int], out: io.StringIO) -> None:
    for _ in range(600):
        if sup.state == "running":
            return
        if task.done():
            pytest.fail(f"the lab ended while starting:\n{out.getvalue()}")
        await asyncio.sleep(0.1)
    pytest.fail(f"the lab did not become ready:\n{out.getvalue()}")


async def test_lab_starts_in_phases_and_stops_every_child(tmp_path: Path) -> None:
    """✓ per process in start order, commands printed, then a stop leaves no child."""
    path, ports = mini_lab(tmp_path)
    out = io.StringIO()
    sup = Supervisor(load_topology(path), tmp_path / "work", timeout=60, out=out)
    task = spawn(sup.run(), name="test lab")
    await until_ready(sup, task, out)
    text = out.getvalue()
    started = [ln.split()[1] for ln in text.splitlines() if ln.startswith("✓ ")]
    assert started == [
        "certificates",
        "JWT",
        "control",
        "dns",
        "pods-c1",
        "tier2-c1",
        "tier1-gateway",
    ]
    assert f"--resolve bookinfo.example.com:{ports['t1']}:127.0.0.1" in text
    printed = {ln.strip() for ln in text.splitlines()}
    lab = {command for _, command in lab_commands(sup.topology)}
    assert lab <= printed
    assert {ln.split()[3] for ln in lab} == {
        "status",
        "kill",
        "start",
        "scenario",
        "token",
        "grpc",
        "down",
    }
    dashboards = dashboard_urls(sup.topology)
    assert [name for name, _ in dashboards] == ["tier1-gateway", "tier2-c1"]
    assert {f"{name:<18} {url}" for name, url in dashboards} <= printed
    async with aiohttp.ClientSession() as s, s.get(dashboards[0][1]) as r:
        assert r.status == 200 and r.content_type == "text/html"
        assert "/dashboard.js" in await r.text()
    status = sup.status()
    assert status["ready"] is True
    pids = [p["pid"] for p in status["processes"]]
    sup.request_stop()
    assert await task == 0
    assert "✓ every lab process has stopped" in out.getvalue()
    assert all(gone(pid) for pid in pids)


async def test_no_wait_starts_everything_and_reports_readiness_later(tmp_path: Path) -> None:
    """--no-wait: • started lines at once, ✓ ready lines as probes pass, status turns ready."""
    path, _ = mini_lab(tmp_path)
    out = io.StringIO()
    sup = Supervisor(load_topology(path), tmp_path / "work", timeout=60, wait=False, out=out)
    task = spawn(sup.run(), name="test lab")
    await until_ready(sup, task, out)
    for _ in range(600):
        if sup.status()["ready"]:
            break
        await asyncio.sleep(0.1)
    text = out.getvalue()
    started = [ln.split()[1] for ln in text.splitlines() if ln.startswith("• ")]
    assert started == ["dns", "pods-c1", "tier2-c1", "tier1-gateway"]
    assert sup.status()["ready"] is True, text
    assert text.count("✓ tier1-gateway") == 1
    sup.request_stop()
    assert await task == 0


async def test_a_child_failing_at_start_stops_the_lab_with_its_log(tmp_path: Path) -> None:
    """A Tier-2 rejecting its config ends start-up with exit 1, its log tail, no children."""
    path, _ = mini_lab(tmp_path, broken=True)
    out = io.StringIO()
    sup = Supervisor(load_topology(path), tmp_path / "work", timeout=60, out=out)
    assert await sup.run() == 1
    text = out.getvalue()
    assert "✗ tier2-c1 exited with code 1 while starting" in text
    assert "spec.http[0].redirect.redirectCode" in text
    assert "✓ every lab process has stopped" in text
    pids = [p["pid"] for p in sup.status()["processes"]]
    assert None not in pids[:3] and pids[3] is None
    assert all(gone(pid) for pid in pids if pid is not None)


async def test_a_busy_port_is_reported_before_anything_starts(tmp_path: Path) -> None:
    """The port check names port, address and process; no child is started."""
    path, ports = mini_lab(tmp_path)
    out = io.StringIO()
    sup = Supervisor(load_topology(path), tmp_path / "work", timeout=60, out=out)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", ports["t1_admin"]))
        busy.listen()
        assert await sup.run() == 1
    text = out.getvalue()
    port = ports["t1_admin"]
    assert f"✗ port {port} on 127.0.0.1 is already in use (tier1-gateway)" in text
    assert "nothing was started" in text
    assert all(p["pid"] is None for p in sup.status()["processes"])
