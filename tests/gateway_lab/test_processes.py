"""Supervised children (start, stop, escalation, exits), readiness probes and the port check."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway_lab.demo_pod import PodConfig
from gateway_lab.dns_server import LabDnsServer
from gateway_lab.grpc_pod import start_grpc_pod
from gateway_lab.processes import (
    Child,
    Probe,
    ProcessSpec,
    StartupError,
    all_probes,
    check_sockets,
    dns_probe,
    grpc_health_probe,
    http_probe,
)
from gateway_lab.topology import SocketNeed
from tests.conftest import free_port


async def never_ready(session: aiohttp.ClientSession) -> str | None:
    return "still warming up"


def spec(tmp_path: Path, code: str, probe: Probe = never_ready) -> ProcessSpec:
    return ProcessSpec(
        name="child",
        kind="test",
        argv=(sys.executable, "-c", code),
        log=tmp_path / "child.log",
        probe=probe,
        summary="a test child",
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def wait_for_log(path: Path, text: str) -> str:
    for _ in range(100):
        content = read(path)
        if text in content:
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


async def test_stop_sends_sigterm_and_reaps_the_child(tmp_path: Path) -> None:
    """A child that exits on SIGTERM is stopped, reaped, and its output is in its log."""
    exits: list[int] = []
    child = Child(
        spec(tmp_path, "import time; print('hello', flush=True); time.sleep(60)"),
        lambda c, code: exits.append(code),
    )
    await child.start()
    assert child.alive and child.pid is not None
    await wait_for_log(child.spec.log, "hello")
    await child.stop()
    assert (child.alive, child.exit_code, exits) == (False, -signal.SIGTERM, [])
    assert child.status()["exit_code"] == -signal.SIGTERM


async def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    """A child ignoring SIGTERM is killed once the grace period is over."""
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    child = Child(spec(tmp_path, code), lambda c, code: None)
    await child.start()
    await wait_for_log(child.spec.log, "ready")
    await child.stop(grace=0.3)
    assert child.exit_code == -signal.SIGKILL


async def test_stop_takes_the_childs_own_children_along(tmp_path: Path) -> None:
    """The whole process group goes: a grandchild the child started does not survive."""
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('grandchild', p.pid, flush=True); time.sleep(60)"
    )
    child = Child(spec(tmp_path, code), lambda c, code: None)
    await child.start()
    log = await wait_for_log(child.spec.log, "grandchild")
    grandchild = int(log.split()[1])
    await child.stop()
    for _ in range(50):
        if gone(grandchild):
            break
        await asyncio.sleep(0.05)
    assert gone(grandchild)


async def test_unexpected_exit_is_reported_with_the_code(tmp_path: Path) -> None:
    """A child ending on its own calls back with its exit code; a stopped one does not."""
    exits: list[tuple[str, int]] = []
    child = Child(
        spec(tmp_path, "raise SystemExit(3)"), lambda c, code: exits.append((c.name, code))
    )
    await child.start()
    for _ in range(100):
        if exits:
            break
        await asyncio.sleep(0.05)
    assert exits == [("child", 3)]
    assert not child.alive and child.exit_code == 3


async def test_restart_after_exit_counts_starts(tmp_path: Path) -> None:
    """start() again after a stop runs a new process and counts it."""
    child = Child(spec(tmp_path, "import time; time.sleep(60)"), lambda c, code: None)
    await child.start()
    first = child.pid
    await child.stop()
    await child.start()
    assert child.alive and child.pid != first and child.starts == 2
    with pytest.raises(RuntimeError, match="already running"):
        await child.start()
    await child.stop()


async def test_wait_ready_reports_an_exit_with_the_log_tail(tmp_path: Path) -> None:
    """A child dying while starting raises StartupError naming it and quoting its log."""
    child = Child(
        spec(tmp_path, "print('bad config: spec.x'); raise SystemExit(1)"), lambda c, code: None
    )
    await child.start()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(StartupError) as caught:
            await child.wait_ready(session, time.monotonic() + 10)
    message = str(caught.value)
    assert message.startswith("child exited with code 1 while starting")
    assert "    bad config: spec.x" in message


async def test_wait_ready_times_out_with_the_probe_reason(tmp_path: Path) -> None:
    """At the deadline the error names the child, its pid and why the probe failed."""
    child = Child(spec(tmp_path, "import time; time.sleep(60)"), lambda c, code: None)
    await child.start()
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(
                StartupError, match=r"did not become ready in time: still warming up"
            ):
                await child.wait_ready(session, time.monotonic() + 0.3)
    finally:
        await child.stop()


async def test_http_probe_needs_200_from_every_url() -> None:
    """Ready only when all URLs answer 200; otherwise the first problem is the reason."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/busy", busy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            assert await http_probe(f"http://127.0.0.1:{port}/ok")(session) is None
            reason = await http_probe(
                f"http://127.0.0.1:{port}/ok", f"http://127.0.0.1:{port}/busy"
            )(session)
            assert reason == f"http://127.0.0.1:{port}/busy answered 503"
    finally:
        await runner.cleanup()
    async with aiohttp.ClientSession() as session:
        refused = await http_probe(f"http://127.0.0.1:{port}/ok")(session)
    assert refused is not None and "ClientConnectorError" in refused


async def test_grpc_health_probe_needs_serving_from_every_pod() -> None:
    """Ready when every gRPC pod's health check is SERVING; else the first reason."""
    first = await start_grpc_pod(PodConfig(role="grpc"))
    second = await start_grpc_pod(PodConfig(role="grpc"))
    targets = (f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}")
    try:
        async with aiohttp.ClientSession() as session:
            assert await grpc_health_probe(*targets)(session) is None
            await second.health.enter_graceful_shutdown()
            reason = await grpc_health_probe(*targets)(session)
            assert reason == f"grpc health of {targets[1]}: NOT_SERVING"
            closed = f"127.0.0.1:{free_port()}"
            refused = await grpc_health_probe(closed)(session)
            assert refused is not None
            assert refused.startswith(f"grpc health of {closed}: UNAVAILABLE: ")
            assert await grpc_health_probe()(session) is None
    finally:
        await first.cleanup(grace=0.1)
        await second.cleanup(grace=0.1)


async def test_all_probes_needs_every_probe() -> None:
    """The first probe that is not ready gives the reason; none at all is ready."""

    async def ready(session: aiohttp.ClientSession) -> str | None:
        return None

    async with aiohttp.ClientSession() as session:
        assert await all_probes(ready, ready)(session) is None
        assert await all_probes(ready, never_ready, ready)(session) == "still warming up"
        assert await all_probes()(session) is None


async def test_dns_probe_asks_the_lab_dns_server() -> None:
    """NOERROR for a known name is ready; NXDOMAIN is reported."""
    server = LabDnsServer({"tier2.c1.lab": ["127.0.1.1"]})
    host, port = await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            assert await dns_probe((host, port), "tier2.c1.lab")(session) is None
            assert await dns_probe((host, port), "missing.lab")(session) == (
                "DNS answered NXDOMAIN for missing.lab"
            )
    finally:
        server.stop()


def test_check_sockets_reports_a_busy_tcp_port_with_its_owner() -> None:
    """A listening socket makes the check name the port, the address and the lab process."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        problems = check_sockets([SocketNeed("tier1-gateway", "127.0.0.1", port)])
    assert problems == [f"port {port} on 127.0.0.1 is already in use (tier1-gateway)"]
    assert check_sockets([SocketNeed("tier1-gateway", "127.0.0.1", port)]) == []


def test_check_sockets_reports_a_busy_udp_port() -> None:
    """The DNS server's UDP socket is checked separately from TCP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        problems = check_sockets([SocketNeed("dns", "127.0.0.1", port, "udp")])
    assert problems == [f"port {port}/udp on 127.0.0.1 is already in use (dns)"]


def test_check_sockets_reports_an_address_this_machine_lacks() -> None:
    """A non-local address (TEST-NET-1) is reported as unavailable, with the macOS hint."""
    problems = check_sockets([SocketNeed("tier2-cluster-1", "192.0.2.1", 8080)])
    assert len(problems) == 1
    assert problems[0].startswith(
        "address 192.0.2.1 is not available on this machine (tier2-cluster-1)"
    )
