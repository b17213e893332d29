"""Functional: upstream connection pools (gateway_core/upstream/pool.py) with Istio
``connectionPool`` limits, on real sockets: overflow, per-connection request caps, idle timeout
and the open-connection accounting the limits depend on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway_core.upstream.cluster import Cluster
from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    get,
    send_raw,
)
from tests.helpers import GatewayHarness

ROUTE = "  - route: [{destination: {host: up.svc}}]"


def pool_rule(settings: str) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: up}}
spec:
  host: up.svc
  trafficPolicy:
    connectionPool: {settings}
"""


def up_cluster(harness: GatewayHarness) -> Cluster:
    (cluster,) = [c for k, c in harness.gateway.runtime.clusters.items() if "up.svc" in k]
    return cluster


def open_connections(harness: GatewayHarness) -> int:
    return up_cluster(harness).resources.connections.count


async def test_overflow_beyond_connections_and_pending(gateway: Callable[..., Any]) -> None:
    """maxConnections 1 and http1MaxPendingRequests 1: of three concurrent requests one is
    served, one waits for the connection and one fails at once with 503 UO."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.3)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with capture_upstream(respond) as up:
        port = free_port()
        limits = pool_rule("{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}")
        await gateway(config(port, ROUTE, {"up.svc": [up.port]}, extra=limits))
        first = asyncio.ensure_future(get(port, "/1"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(get(port, "/2"))
        await asyncio.sleep(0.05)
        third = await get(port, "/3")
        statuses = [(await first).status, (await second).status]
    assert third.status == 503
    assert third.body == b"upstream overflow: too many pending requests\n"
    assert statuses == [200, 200]
    assert up.connections == 1
    assert [r.target for r in up.requests] == [b"/1", b"/2"]


async def test_max_requests_per_connection(gateway: Callable[..., Any]) -> None:
    """maxRequestsPerConnection 1: every request gets a fresh upstream connection."""
    async with capture_upstream() as up:
        port = free_port()
        limits = pool_rule("{http: {maxRequestsPerConnection: 1}}")
        harness = await gateway(config(port, ROUTE, {"up.svc": [up.port]}, extra=limits))
        for _ in range(3):
            assert (await get(port, "/")).status == 200
        await asyncio.sleep(0.1)
        assert open_connections(harness) == 0
    assert up.connections == 3


async def test_idle_connections_closed_after_idle_timeout(gateway: Callable[..., Any]) -> None:
    """connectionPool.http.idleTimeout closes an unused upstream connection; the next request
    opens a new one."""
    async with capture_upstream() as up:
        port = free_port()
        limits = pool_rule("{http: {idleTimeout: 0.2s}}")
        harness = await gateway(config(port, ROUTE, {"up.svc": [up.port]}, extra=limits))
        assert (await get(port, "/a")).status == 200
        assert open_connections(harness) == 1
        await asyncio.sleep(0.5)
        assert open_connections(harness) == 0
        assert (await get(port, "/b")).status == 200
    assert up.connections == 2


async def test_connections_closed_by_upstream_are_not_counted(
    gateway: Callable[..., Any],
) -> None:
    """Upstream closes (Connection: close, and closing idle keep-alive connections) release
    their slots: with maxConnections 1 every later request still gets through."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        return False

    async with capture_upstream(respond) as up:
        port = free_port()
        limits = pool_rule("{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}")
        harness = await gateway(config(port, ROUTE, {"up.svc": [up.port]}, extra=limits))
        statuses = []
        for _ in range(5):
            (resp,), _ = await send_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", close_wait=0)
            statuses.append(resp.status)
        await asyncio.sleep(0.1)
        assert open_connections(harness) == 0
    assert statuses == [200] * 5
    assert up.connections == 5


async def test_host_without_connection_opens_one_at_the_cluster_limit(
    gateway: Callable[..., Any],
) -> None:
    """Defect 1: maxConnections 1, two hosts, ROUND_ROBIN. While the first request holds the
    cluster's only connection on one host, the second goes to the other host, which has no
    connection: it opens one anyway (Envoy) and is answered at once instead of waiting out the
    stream idle timeout for a 504. The breaker records the overflow."""
    release = asyncio.Event()
    slow_arrived = asyncio.Event()

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if req.target == b"/slow":
            slow_arrived.set()
            await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    rule = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 1}}
"""
    idle_timeout = 3.0
    async with capture_upstream(respond) as one, capture_upstream(respond) as two:
        port = free_port()
        services = {"up.svc": [one.port, two.port]}
        harness = await gateway(
            config(port, ROUTE, services, extra=rule), stream_idle_timeout=idle_timeout
        )
        slow = asyncio.ensure_future(get(port, "/slow"))
        await asyncio.wait_for(slow_arrived.wait(), 5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            fast = await get(port, "/fast")
            waited = loop.time() - started
        finally:
            release.set()
        assert (fast.status, fast.body) == (200, b"ok")
        assert waited < idle_timeout / 3
        assert (await slow).status == 200
        resources = up_cluster(harness).resources
    assert (one.connections, two.connections) == (1, 1)
    assert resources.connections.overflow == 1
