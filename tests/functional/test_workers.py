"""Functional: ``run --workers 2`` as a real process tree on 127.0.0.1 -- atomic reloads across
workers, a worker killed under load, no orphans, shared ejections, one metrics endpoint,
per-worker breaker shares and the SIGTERM drain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.functional.support import config, get
from tests.functional.workers_kit import (
    Client,
    GatewayTree,
    alive,
    clients_on_every_worker,
    dumps,
    named_upstream,
    poll,
    prometheus_value,
)


def _direct(port: int, body: str, extra: str = "") -> str:
    return config(
        port, f"  - directResponse: {{status: 200, body: {{string: {body}}}}}", {}, extra=extra
    )


async def test_a_reload_is_atomic_across_workers_and_a_rejected_one_reaches_none(
    tmp_path: Path,
) -> None:
    """Once ``/reload`` answers (and ``/ready`` reports the version), connections held on every
    worker and fresh ones all see v2; a configuration the supervisor rejects -- invalid, or a
    port it cannot bind -- changes no worker."""
    port = free_port()
    tree = await GatewayTree(tmp_path, _direct(port, "v1")).start()
    try:
        held = await clients_on_every_worker(tree, port, 6)
        tree.config.write_text(_direct(port, "v2"))
        status, body = await tree.post("/reload")
        assert status == 200 and body["accepted"], body
        v2 = body["version"]
        async with aiohttp.ClientSession() as s, s.get(tree.admin + "/ready") as r:
            assert r.status == 200 and r.headers["X-Config-Version"] == v2
        info = await tree.workers_info()
        assert [w["version"] for w in info] == [v2, v2], dumps(info)
        for pid, clients in held.items():
            for client in clients:
                assert (await client.get()).body == b"v2", pid
        fresh = [(await get(port)).body for _ in range(30)]
        assert fresh == [b"v2"] * 30

        pids = await tree.worker_pids()
        tree.config.write_text(_direct(port, "v3").replace("istio.io/v1\n", "istio.io/v9\n"))
        status, body = await tree.post("/reload")
        assert status == 400 and not body["accepted"] and body["version"] == v2
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            second = (
                f'  - port: {{number: {busy}, name: http-2, protocol: HTTP}}\n    hosts: ["*"]\n'
            )
            text = _direct(port, "v4").replace(
                '    hosts: ["*"]\n', '    hosts: ["*"]\n' + second, 1
            )
            assert f"number: {busy}" in text
            tree.config.write_text(text)
            status, body = await tree.post("/reload")
            assert status == 400 and f"127.0.0.1:{busy}" in body["error"], body
        info = await tree.workers_info()
        assert [w["pid"] for w in info] == pids and [w["version"] for w in info] == [v2, v2]
        assert f":{busy} " not in tree.log.read_text()  # no worker ever tried to listen there
        assert [(await get(port)).body for _ in range(10)] == [b"v2"] * 10
        for clients in held.values():
            for client in clients:
                assert (await client.get()).body == b"v2"

        # SIGHUP reloads the same way: once /ready names the new version, all serve it.
        tree.config.write_text(_direct(port, "v5"))
        assert tree.proc is not None
        tree.proc.send_signal(signal.SIGHUP)

        async def ready_on_a_new_version() -> bool:
            async with aiohttp.ClientSession() as s, s.get(tree.admin + "/ready") as r:
                return r.headers.get("X-Config-Version", v2) != v2

        await poll(ready_on_a_new_version, 10.0, "/ready naming the SIGHUP version")
        assert [(await get(port)).body for _ in range(20)] == [b"v5"] * 20
        for clients in held.values():
            for client in clients:
                assert (await client.get()).body == b"v5"
    finally:
        await tree.close()


async def test_a_killed_worker_loses_only_its_in_flight_requests_and_is_back_fast(
    tmp_path: Path,
) -> None:
    """Twelve clients keep requests in flight (the upstream takes 20 ms) on persistent
    connections; ``kill -9`` of one worker fails only the clients whose connection it owned,
    once each (they reconnect to a live worker), the others never fail, and the supervisor has
    a new worker serving the current version within 2 s."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        return web.Response(text="ok")

    with migrating_reuseport_requests():
        await _kill_one_worker_under_load(tmp_path, slow)


@contextlib.contextmanager
def migrating_reuseport_requests() -> Iterator[None]:
    """``net.ipv4.tcp_migrate_req=1`` for the test (docs/operations.md, worker processes):
    without it, a client that reconnects in the millisecond while the killed worker's listening
    socket is torn down lands in that socket's queue and is reset, a second failure."""
    knob = Path("/proc/sys/net/ipv4/tcp_migrate_req")
    try:
        before = knob.read_text().strip()
        knob.write_text("1\n")
    except OSError as exc:
        pytest.skip(f"cannot set {knob} ({exc}): reuseport requests would not migrate")
    try:
        yield
    finally:
        knob.write_text(before + "\n")


async def _kill_one_worker_under_load(tmp_path: Path, slow: Any) -> None:
    runner, up = await named_upstream("up", slow)
    port = free_port()
    yaml_text = config(port, "  - route: [{destination: {host: up.svc}}]", {"up.svc": [up]})
    tree = await GatewayTree(tmp_path, yaml_text).start()
    try:
        by_pid = await clients_on_every_worker(tree, port, 12)
        clients = [c for group in by_pid.values() for c in group]
        victim = max(by_pid, key=lambda pid: len(by_pid[pid]))
        doomed = {id(c) for c in by_pid[victim]}
        failures: dict[int, int] = {id(c): 0 for c in clients}
        after_kill: dict[int, int] = {id(c): 0 for c in clients}
        killed = asyncio.Event()
        stop = time.monotonic() + 8.0

        async def load(client: Client) -> None:
            for _ in range(2000):
                if time.monotonic() > stop:
                    return
                try:
                    response = await client.get(within=3.0)
                    assert response.status == 200, response
                    if killed.is_set():
                        after_kill[id(client)] += 1
                except (EOFError, ConnectionError, TimeoutError):
                    failures[id(client)] += 1
                    client.close()
                    await client.connect()

        tasks = [asyncio.ensure_future(load(c)) for c in clients]
        await asyncio.sleep(0.5)
        slot = next(w["worker"] for w in await tree.workers_info() if w["pid"] == victim)
        os.kill(victim, signal.SIGKILL)
        killed.set()
        version = (await tree.get_json("/config_dump"))["version"]

        async def replaced() -> bool:
            w = (await tree.workers_info())[slot]
            return w["pid"] not in (None, victim) and w["version"] == version

        back = await poll(replaced, 2.0, "the killed worker's replacement serving")
        await asyncio.sleep(1.0)
        stop = time.monotonic()
        await asyncio.gather(*tasks)
        failed = {k: v for k, v in failures.items() if v}
        lost = sum(failed.values())
        print(
            f"worker kill: {len(doomed)} of {len(clients)} connections on the victim, "
            f"{lost} requests failed, replacement serving after {back:.2f}s"
        )
        assert set(failed) <= doomed, "a client of a surviving worker failed"
        assert all(v == 1 for v in failed.values()), failed
        assert 1 <= sum(failed.values()) <= len(doomed)
        assert all(after_kill[k] > 0 for k in after_kill), "a client stopped being served"
    finally:
        await tree.close()
        await runner.cleanup()


async def test_killing_the_supervisor_leaves_no_orphan(tmp_path: Path) -> None:
    port = free_port()
    tree = await GatewayTree(tmp_path, _direct(port, "v1")).start()
    try:
        workers = await tree.worker_pids()
        tree_pids = tree.tree_pids()
        assert set(workers) <= set(tree_pids) and len(tree_pids) >= 3  # + the fork server
        assert tree.proc is not None
        tree.proc.kill()
        tree.proc.wait(5)

        async def gone() -> bool:
            return not any(alive(pid) for pid in tree_pids)

        await poll(gone, 5.0, "every worker and the fork server exiting")
    finally:
        await tree.close()


async def test_sigterm_drains_every_worker_and_exits_0(tmp_path: Path) -> None:
    """SIGTERM to the supervisor: readiness fails, every worker keeps answering during the
    propagation delay, then all of them and the supervisor exit, the supervisor with 0."""
    port = free_port()
    tree = GatewayTree(tmp_path, _direct(port, "v1"), 2, "--drain-propagation", "1.5")
    await tree.start()
    try:
        held = await clients_on_every_worker(tree, port, 4)
        tree_pids = tree.tree_pids()
        assert tree.proc is not None
        tree.proc.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            async with aiohttp.ClientSession() as s, s.get(tree.admin + "/ready") as r:
                return r.status == 503

        await poll(not_ready, 1.0, "readiness failing after SIGTERM")
        for clients in held.values():
            assert (await clients[0].get()).body == b"v1"
        code = await asyncio.get_running_loop().run_in_executor(None, tree.proc.wait, 15)
        assert code == 0, tree.log.read_text()

        async def gone() -> bool:
            return not any(alive(pid) for pid in tree_pids)

        await poll(gone, 5.0, "workers exiting with the supervisor")
    finally:
        await tree.close()


async def test_one_metrics_endpoint_counts_the_requests_of_every_worker(tmp_path: Path) -> None:
    port = free_port()
    tree = await GatewayTree(tmp_path, _direct(port, "v1")).start()
    try:
        by_pid = await clients_on_every_worker(tree, port, 6)
        sent = sum(len(group) for group in by_pid.values())  # one request each so far
        for group in by_pid.values():
            for c in group:
                for _ in range(4):
                    assert (await c.get()).status == 200
                sent += 4
        async with aiohttp.ClientSession() as s, s.get(tree.admin + "/stats/prometheus") as r:
            text = await r.text()
        name = "gateway_downstream_rq_total"
        assert prometheus_value(text, name, code_class="2xx") == sent
        assert prometheus_value(text, "gateway_workers", state="running") == 2
        assert prometheus_value(text, "gateway_downstream_cx_active") == sent / 5
        assert prometheus_value(text, "gateway_config_reloads_total", result="success") == 1
    finally:
        await tree.close()


_CONTROL_PATH_LIBRARIES = (
    "/aiohttp/",
    "/multidict/",
    "/yarl/",
    "/cryptography/",
    "/yaml/",
    "/grpc/",
    "/pydantic_core/",
)


def _memory(pid: int) -> tuple[float, float, list[str]]:
    """RSS and PSS in MiB, and the mapped files of control-path packages."""
    sizes: dict[str, float] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, *rest = line.split()
            if key in ("Rss:", "Pss:"):
                sizes[key] = int(rest[0]) / 1024
    with open(f"/proc/{pid}/maps") as f:
        paths = {line.split()[-1] for line in f if "/" in line}
    return (
        sizes["Rss:"],
        sizes["Pss:"],
        sorted(p for p in paths if any(lib in p for lib in _CONTROL_PATH_LIBRARIES)),
    )


async def test_a_serving_worker_loads_no_control_path_library(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    """Workers answer traffic, and neither the fork server nor a worker has the admin server's,
    the JWT verifier's, the YAML loader's, the configuration models' (pydantic's: workers
    receive compiled snapshots) or gRPC's native libraries mapped (the supervisor, which serves
    the admin port, has aiohttp's)."""
    port = free_port()
    tree = await GatewayTree(tmp_path, _direct(port, "v1")).start()
    try:
        by_pid = await clients_on_every_worker(tree, port, 4)
        assert len(by_pid) == 2
        assert tree.proc is not None
        supervisor = _memory(tree.proc.pid)
        assert any("/aiohttp/" in p for p in supervisor[2]), supervisor[2]
        report = []
        for pid in await tree.worker_pids():
            rss, pss, control = _memory(pid)
            assert control == [], f"worker {pid} maps {control}"
            report.append(f"worker {pid}: RSS {rss:.1f} MiB, PSS {pss:.1f} MiB")
        measured("; ".join(report) + f"; supervisor RSS {supervisor[0]:.1f} MiB")
    finally:
        await tree.close()


BREAKER = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy:
    connectionPool: {http: {http2MaxRequests: 2}}
"""


async def test_each_worker_holds_its_share_of_the_circuit_breaker(tmp_path: Path) -> None:
    """``http2MaxRequests: 2`` over 2 workers: each worker admits ceil(2/2) = 1 request at a
    time, so six concurrent requests spread over both workers reach the upstream two at a time
    in all (never 4, as two full copies of the limit would allow); the rest get 503 UO."""
    release = asyncio.Event()
    active = [0, 0]

    async def hold(request: web.Request) -> web.Response:
        active[0] += 1
        active[1] = max(active[1], active[0])
        await release.wait()
        active[0] -= 1
        return web.Response(text="held")

    runner, up = await named_upstream("up", hold)
    port = free_port()
    rules = "  - route: [{destination: {host: up.svc}}]"
    tree = GatewayTree(tmp_path, config(port, rules, {"up.svc": [up]}, extra=BREAKER))
    await tree.start()
    try:
        release.set()
        by_pid = await clients_on_every_worker(tree, port, 6)
        release.clear()
        clients = [c for group in by_pid.values() for c in group]
        tasks = [asyncio.ensure_future(c.get(within=10.0)) for c in clients]

        async def settled() -> bool:
            return sum(t.done() for t in tasks) == len(clients) - 2 and active[0] == 2

        await poll(settled, 5.0, "two requests held upstream, the rest refused")
        release.set()
        responses = await asyncio.gather(*tasks)
        statuses = sorted(r.status for r in responses)
        assert statuses == [200, 200] + [503] * (len(clients) - 2)
        assert active[1] == 2
    finally:
        await tree.close()
        await runner.cleanup()
