"""Tests for gateway_core/upstream/pools.py: the (host, SNI) pool map of a cluster is bounded per
host and drops pools that stay empty; driven without sockets."""

from __future__ import annotations

import random

from gateway_core.snapshot import (
    ClusterSpec,
    Discovery,
    EndpointSpec,
    PoolLimits,
    UpstreamTls,
    UpstreamTlsMode,
)
from gateway_core.upstream.client_tls import ClientContextStore
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.discovery import DnsResolver
from gateway_core.upstream.pools import EMPTY_POOL_EXPIRY, MAX_POOLS_PER_HOST
from gateway_core.utils.clock import FakeClock
from tests.gateway_core.upstream.pool_fakes import FakeConn, FakeConnector, Waiter, hosts, rig

A, B = hosts(2)


async def test_a_thousand_host_values_leave_at_most_the_bound_of_pools() -> None:
    """TLS without a configured SNI: the SNI (and the pool key) is the client's Host. A
    thousand distinct Host values through ``Cluster.pool_for`` leave at most
    ``MAX_POOLS_PER_HOST`` pools; the evicted pools' idle connections are closed and their
    slots released."""
    spec = ClusterSpec(
        key="outbound|443||tier2.lab",
        service_host="tier2.lab",
        port=443,
        subset=None,
        discovery=Discovery.STATIC,
        endpoints=(EndpointSpec("10.1.0.1", 443),),
        tls=UpstreamTls(UpstreamTlsMode.SIMPLE, insecure_skip_verify=True),
    )
    connector = FakeConnector()
    cluster = Cluster(
        spec,
        rng=random.Random(1),
        clock=FakeClock(),
        resolver=DnsResolver(hosts_file=None),
        connector=connector,
        tls_store=ClientContextStore(),
    )
    (host,) = cluster.hosts
    conns: list[FakeConn] = []
    for i in range(1000):
        pool = cluster.pool_for(host, f"h{i}.example.com:443".encode())
        pool.acquire(Waiter(str(i)))
        attempt = connector.attempts[0]
        assert attempt.server_hostname == f"h{i}.example.com"
        assert attempt.tls is cluster.tls and attempt.tls is not None
        conn = connector.succeed()
        conn.finish()
        conns.append(conn)
        assert len(cluster.pools) <= MAX_POOLS_PER_HOST
    assert len(cluster.pools) == MAX_POOLS_PER_HOST
    evicted = [c for c in conns if c.closed]
    assert len(evicted) == 1000 - MAX_POOLS_PER_HOST
    assert all(not c.closed for c in conns[-MAX_POOLS_PER_HOST:])
    for conn in evicted:
        conn.lost()
    assert cluster.resources.connections.count == MAX_POOLS_PER_HOST
    await cluster.stop()
    assert all(c.closed for c in conns)


def test_eviction_spares_pools_with_queued_requests_and_recent_use() -> None:
    """At the bound the least recently used pool goes, unless requests are queued on it."""
    r = rig(PoolLimits(max_connections=1), max_per_host=2)
    queued_pool = r.pools.get(A, "one")
    queued_pool.acquire(Waiter("busy"))
    r.connector.succeed()
    queued = Waiter("queued")
    queued_pool.acquire(queued)
    r.pools.get(A, "two").acquire(Waiter("two"))  # no connection on this pool: it opens one
    two = r.connector.succeed()
    two.finish()
    r.pools.get(A, "three")
    assert sorted(p.server_hostname or "" for p in r.pools.pools.values()) == ["one", "three"]
    assert two.closed and queued.failure is None
    r.pools.get(A, "one")  # most recently used now
    r.pools.get(A, "four")
    assert sorted(p.server_hostname or "" for p in r.pools.pools.values()) == ["four", "one"]
    r.pools.get(B, "other-host")
    assert len(r.pools) == 3  # the bound is per host


def test_empty_pools_expire_and_busy_ones_stay() -> None:
    """A pool with no connection, attempt or queued request for ``EMPTY_POOL_EXPIRY`` is
    dropped by one timer; being used again in between keeps it; a pool holding a connection is
    never dropped this way."""
    r = rig()
    kept = r.pools.get(B, None)
    kept.acquire(Waiter("kept"))
    r.connector.succeed().finish()
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("1"))
    conn = r.connector.succeed()
    conn.finish()
    conn.lost()
    assert pool.is_empty and len(r.pools) == 2
    r.loop.advance(EMPTY_POOL_EXPIRY / 2)
    assert r.pools.get(A, None) is pool
    pool.acquire(Waiter("2"))  # used again: its empty period starts over when it empties
    r.connector.fail()
    r.loop.advance(EMPTY_POOL_EXPIRY / 2)
    assert r.pools.pools.get((A.key, None)) is pool
    r.loop.advance(EMPTY_POOL_EXPIRY / 2)
    assert (A.key, None) not in r.pools.pools
    assert r.pools.pools.get((B.key, None)) is kept
    assert r.loop.pending() != []  # only B's idle sweeper is left
    assert all(t.callback != r.pools._expire for t in r.loop.pending())
    fresh = r.pools.get(A, None)
    assert fresh is not pool
