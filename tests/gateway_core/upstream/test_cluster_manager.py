"""Tests: ``ClusterManager`` retires replaced clusters after the drain delay, and ``close``
stops the ones still draining too."""

from __future__ import annotations

import asyncio
import random

from gateway_core.snapshot import ClusterSpec, Discovery, EndpointSpec, HealthCheckPolicy
from gateway_core.upstream.client_tls import ClientContextStore
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.cluster_manager import ClusterManager
from gateway_core.upstream.discovery import DnsResolver
from gateway_core.utils.clock import FakeClock
from tests.gateway_core.server.ops_testkit import wait_for
from tests.gateway_core.upstream.pool_fakes import FakeConnector


def _spec(key: str) -> ClusterSpec:
    return ClusterSpec(
        key=key,
        service_host="svc",
        port=80,
        subset=None,
        discovery=Discovery.STATIC,
        # Port 9 on loopback refuses: every probe fails fast, which is all these tests need.
        endpoints=(EndpointSpec("127.0.0.1", 9),),
        health_check=HealthCheckPolicy(interval=60.0, timeout=0.5),
    )


def _manager(retire_delay: float) -> ClusterManager:
    return ClusterManager(
        rng=random.Random(1),
        clock=FakeClock(),
        resolver=DnsResolver(hosts_file=None),
        connector=FakeConnector(),
        tls_store=ClientContextStore(),
        retire_delay=retire_delay,
    )


def _running(cluster: Cluster) -> bool:
    assert cluster.health is not None
    return cluster.health.running


async def _publish(manager: ClusterManager, *keys: str) -> None:
    manager.publish(await manager.reconcile({k: _spec(k) for k in keys}))


async def test_close_stops_clusters_still_draining_after_a_reload() -> None:
    """A reload removed cluster ``a``; the gateway shuts down within the drain delay. ``a``'s
    health checker must stop with the rest (its HTTP client otherwise outlives the loop)."""
    manager = _manager(retire_delay=30.0)
    await _publish(manager, "a", "b")
    a, b = manager.clusters["a"], manager.clusters["b"]
    assert _running(a) and _running(b)
    await _publish(manager, "b")
    await asyncio.sleep(0)  # the retire task starts its drain delay
    assert _running(a), "a removed cluster keeps running through the drain delay"
    await manager.close()
    assert not _running(a) and not _running(b)


async def test_a_removed_cluster_stops_after_the_drain_delay() -> None:
    manager = _manager(retire_delay=0.05)
    await _publish(manager, "a", "b")
    a = manager.clusters["a"]
    assert _running(a)
    await _publish(manager, "b")

    async def stopped() -> bool:
        return not _running(a)

    await wait_for(stopped, 5.0, "the removed cluster stopped after its drain delay")
    assert _running(manager.clusters["b"])
    await manager.close()
