"""Functional: state shared by the workers of ``run --workers 2`` (real process tree on
127.0.0.1) -- ejections and active health checks decided once in the supervisor and followed by
every worker, and one sticky-cookie key for all of them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.conftest import free_port
from tests.functional.support import config, read_response
from tests.functional.workers_kit import (
    GatewayTree,
    clients_on_every_worker,
    named_upstream,
    poll,
)

OUTLIER = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
"""


async def test_an_ejection_decided_once_holds_in_every_worker(tmp_path: Path) -> None:
    """Only one worker's clients meet the failing host; the supervisor's detector ejects it
    from their reported outcomes, and requests through every worker then avoid it -- also
    through the worker that never saw a failure itself."""

    async def failing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="bad")

    bad_runner, bad = await named_upstream("bad", failing)
    good_runner, good = await named_upstream("good")
    port = free_port()
    rules = "  - route: [{destination: {host: up.svc}}]"
    tree = GatewayTree(tmp_path, config(port, rules, {"up.svc": [bad, good]}, extra=OUTLIER))
    await tree.start()
    try:
        by_pid = await clients_on_every_worker(tree, port, 4)
        first, other = list(by_pid)[:2]
        client = by_pid[first][0]

        async def ejected() -> bool:
            await client.get()
            clusters = await tree.get_json("/clusters")
            state = clusters["outbound|80||up.svc"]
            return any(f"127.0.0.1:{bad}" in lvl["ejected"] for lvl in state["priorities"])

        await poll(ejected, 5.0, "the failing host ejected")
        for pid in (first, other):
            for c in by_pid[pid]:
                bodies = {(await c.get()).body for _ in range(6)}
                assert bodies == {b"good"}, (pid, bodies)
    finally:
        await tree.close()
        await bad_runner.cleanup()
        await good_runner.cleanup()


HEALTH = """---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: up}
spec:
  host: up.svc
  healthCheck: {path: /health, interval: 1s, timeout: 1s, unhealthyThreshold: 1,
                healthyThreshold: 1}
"""


async def test_health_checks_run_once_and_every_worker_follows_them(tmp_path: Path) -> None:
    """Only the supervisor probes (one probe stream per host, whatever N); when the failing
    host's probe fails, requests through every worker avoid it."""
    probes = {"bad": 0, "good": 0}

    def pod(name: str, status: int) -> Any:
        async def handle(request: web.Request) -> web.Response:
            if request.path == "/health":
                probes[name] += 1
                return web.Response(status=status)
            return web.Response(text=name)

        return handle

    bad_runner, bad = await named_upstream("bad", pod("bad", 503))
    good_runner, good = await named_upstream("good", pod("good", 200))
    port = free_port()
    rules = "  - route: [{destination: {host: up.svc}}]"
    tree = GatewayTree(tmp_path, config(port, rules, {"up.svc": [bad, good]}, extra=HEALTH))
    await tree.start()
    try:

        async def bad_unhealthy() -> bool:
            state = (await tree.get_json("/clusters"))["outbound|80||up.svc"]
            return any(
                f"127.0.0.1:{bad}" in lvl["health_check_failed"] for lvl in state["priorities"]
            )

        await poll(bad_unhealthy, 5.0, "the failing host marked unhealthy")
        by_pid = await clients_on_every_worker(tree, port, 4)
        for pid, clients in by_pid.items():
            for c in clients:
                bodies = {(await c.get()).body for _ in range(6)}
                assert bodies == {b"good"}, (pid, bodies)
        started = dict(probes)
        await asyncio.sleep(2.2)
        # About one probe per second per host: the supervisor's, never one per worker.
        assert all(1 <= probes[n] - started[n] <= 4 for n in probes), (started, probes)
    finally:
        await tree.close()
        await bad_runner.cleanup()
        await good_runner.cleanup()


STICKY = """---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: up}
spec:
  host: up.svc
  stickySession: {cookie: {name: gw-sticky, ttl: 1h}, target: HOST}
"""


async def test_a_sticky_cookie_from_one_worker_is_honoured_by_every_worker(
    tmp_path: Path,
) -> None:
    """No ``--sticky-secret-file``: the supervisor's random key is every worker's key, so a
    cookie minted by one worker pins the same pod through all of them."""
    runners = [await named_upstream(f"p{i}") for i in range(3)]
    port = free_port()
    rules = "  - route: [{destination: {host: up.svc}}]"
    pods = [p for _, p in runners]
    tree = GatewayTree(tmp_path, config(port, rules, {"up.svc": pods}, extra=STICKY))
    await tree.start()
    try:
        by_pid = await clients_on_every_worker(tree, port, 4)
        first = next(iter(by_pid.values()))[0]
        minted = await first.get()
        cookie = next(
            v.split(b";")[0].split(b"=", 1)[1]
            for v in minted.all(b"set-cookie")
            if v.startswith(b"gw-sticky=")
        )
        for pid, clients in by_pid.items():
            for c in clients:
                for _ in range(4):
                    assert c.writer is not None
                    c.writer.write(
                        b"GET / HTTP/1.1\r\nHost: h\r\nCookie: gw-sticky=" + cookie + b"\r\n\r\n"
                    )
                    response = await read_response(c.reader)  # type: ignore[arg-type]
                    assert response.body == minted.body, pid
                    assert not response.all(b"set-cookie"), "the cookie was honoured, not replaced"
    finally:
        await tree.close()
        for runner, _ in runners:
            await runner.cleanup()
