"""Tests for gateway_core/upstream/pool.py and pools.py: the pool state machine driven without
sockets (a fake connector, fake connections and a fake clock), against the real
``ResourceManager``."""

from __future__ import annotations

import pytest

from gateway_core.snapshot import PoolLimits
from gateway_core.upstream.pool import Overflow
from tests.gateway_core.upstream.pool_fakes import FakeConn, Waiter, hosts, rig

A, B, C = hosts(3)


def test_acquire_connects_then_reuses_the_idle_connection() -> None:
    """No idle connection: one attempt, the waiter gets the connection it made. Released, it
    is idle and handed to the next request synchronously, without a new attempt."""
    r = rig()
    pool = r.pools.get(A, None)
    first = Waiter("first")
    pool.acquire(first)
    assert len(r.connector.attempts) == 1 and first.conn is None
    assert r.counts() == (1, 0)
    conn = r.connector.succeed()
    assert first.conn is conn and r.events.connected == [A.label]
    conn.finish()
    assert pool.idle == [conn] and conn.idle_since == r.loop.now
    second = Waiter("second")
    pool.acquire(second)
    assert second.conn is conn and r.connector.attempts == []
    assert r.counts() == (1, 0) and pool.busy == 1


def test_idle_connections_close_after_the_idle_timeout() -> None:
    """One sweep timer per pool closes connections idle for ``idle_timeout``; a closing
    connection found in the idle list is skipped and a new one is opened."""
    r = rig(PoolLimits(idle_timeout=30.0))
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("w"))
    conn = r.connector.succeed()
    conn.finish()
    r.loop.advance(29.0)
    assert not conn.closed and pool.idle == [conn]
    r.loop.advance(1.0)
    assert conn.closed and pool.idle == []
    assert r.counts() == (1, 0)  # still counted until the transport reports it lost
    conn.lost()
    assert r.counts() == (0, 0)
    other = pool.idle
    other.append(FakeConn(pool, "stale"))
    other[0].close()
    fresh = Waiter("fresh")
    pool.acquire(fresh)
    assert fresh.conn is None and len(r.connector.attempts) == 1


def test_max_requests_per_connection_stops_reuse() -> None:
    r = rig(PoolLimits(max_requests_per_connection=2))
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("1"))
    conn = r.connector.succeed()
    conn.finish()
    assert pool.idle == [conn]
    pool.acquire(Waiter("2"))
    conn.finish()
    assert conn.closed and pool.idle == [] and r.counts() == (0, 0)


def test_pending_queue_limit_and_overflow() -> None:
    """maxConnections 1, http1MaxPendingRequests 1: one connects, one waits, the third
    overflows. Each refusal is counted on its breaker; the waiter gets the connection back."""
    r = rig(PoolLimits(max_connections=1, max_pending_requests=1))
    pool = r.pools.get(A, None)
    first, second, third = Waiter("1"), Waiter("2"), Waiter("3")
    pool.acquire(first)
    conn = r.connector.succeed()
    pool.acquire(second)
    assert r.counts() == (1, 1) and second.conn is None
    with pytest.raises(Overflow):
        pool.acquire(third)
    assert r.resources.pending_requests.overflow == 1
    assert r.resources.connections.overflow == 2
    assert r.resources.refused_requests == 1
    conn.finish()
    assert second.conn is conn and r.counts() == (1, 0) and pool.idle == []


def test_waiters_are_served_in_order_and_a_cancelled_one_is_skipped() -> None:
    r = rig(PoolLimits(max_connections=1))
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("first"))
    conn = r.connector.succeed()
    queued = [Waiter(str(i)) for i in range(4)]
    for waiter in queued:
        pool.acquire(waiter)
    assert r.counts() == (1, 4)
    pool.cancel(queued[1])
    pool.cancel(queued[1])  # a second cancel (an abandoned attempt) changes nothing
    assert r.counts() == (1, 3)
    served = []
    for _ in range(3):
        conn.finish()
        served += [w.name for w in queued if w.conn is conn and w.name not in served]
    assert served == ["0", "2", "3"] and queued[1].conn is None
    conn.finish()
    assert pool.idle == [conn] and r.counts() == (1, 0)


def test_connect_failure_fails_the_queue_left_with_nothing_to_serve_it() -> None:
    """The attempt's waiter fails; so does the queue when the host has no other connection or
    attempt (Envoy purges pending requests). The slot and the pending count are released."""
    r = rig(PoolLimits(max_connections=1))
    pool = r.pools.get(A, None)
    first = Waiter("first")
    pool.acquire(first)
    late = Waiter("late")
    pool.acquire(late)
    assert r.counts() == (1, 1)
    r.connector.fail(reason="connection refused")
    assert first.failure == ("connection refused", False)
    assert late.failure == ("connection refused", False)
    assert r.events.failed == [(A.label, False)]
    assert r.counts() == (0, 0) and pool.is_empty


def test_connect_failure_keeps_the_queue_while_another_connection_can_serve_it() -> None:
    r = rig(PoolLimits(max_connections=2))
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("holder"))
    conn = r.connector.succeed()
    doomed = Waiter("doomed")
    pool.acquire(doomed)
    queued = Waiter("queued")
    pool.acquire(queued)
    r.connector.fail()
    assert doomed.failure is not None and queued.failure is None
    # The failed attempt's slot is free again: the queued request gets an attempt of its own.
    assert r.counts() == (2, 0) and len(r.connector.attempts) == 1
    conn.finish()
    assert pool.idle == [conn]


def test_connect_timeout_cancels_the_attempt_and_ignores_a_late_connection() -> None:
    r = rig(PoolLimits(connect_timeout=2.0))
    pool = r.pools.get(A, None)
    waiter = Waiter("w")
    pool.acquire(waiter)
    attempt = r.connector.attempts[0]
    r.loop.advance(1.9)
    assert waiter.failure is None
    r.loop.advance(0.1)
    assert waiter.failure == ("connect timeout after 2s", True) and attempt.cancelled
    assert r.events.failed == [(A.label, True)] and r.counts() == (0, 0)
    late = r.connector.succeed(attempt)
    assert late.closed and pool.connections == set() and r.counts() == (0, 0)


def test_a_connection_lost_during_connect_is_a_connect_failure() -> None:
    r = rig()
    pool = r.pools.get(A, None)
    waiter = Waiter("w")
    pool.acquire(waiter)
    attempt = r.connector.attempts[0]
    r.connector.attempts.remove(attempt)
    conn = FakeConn(pool, "lost-early")
    conn.close()
    attempt.done(conn, "")
    assert waiter.failure == ("connection closed by the upstream", False)
    assert r.counts() == (0, 0)


def test_a_host_with_no_connection_opens_one_at_the_cluster_limit() -> None:
    """Defect 1: the limit is per cluster. Host B has no connection, connecting or open, so it
    opens one past maxConnections (Envoy) instead of queueing with nothing to wake it."""
    r = rig(PoolLimits(max_connections=1, max_pending_requests=0))
    r.pools.get(A, None).acquire(Waiter("a"))
    on_b = Waiter("b")
    r.pools.get(B, None).acquire(on_b)
    assert [a.host for a in r.connector.attempts] == [A, B]
    assert r.counts() == (2, 0) and r.resources.connections.overflow == 1
    r.connector.succeed(r.connector.attempts[1])
    assert on_b.conn is not None
    # B now has a connection: a further request at the limit queues (here: overflows).
    with pytest.raises(Overflow):
        r.pools.get(B, None).acquire(Waiter("b2"))


def test_a_slot_freed_on_another_host_wakes_the_oldest_waiter_of_the_cluster() -> None:
    """Requests queued on A and B (each host busy, cluster at its limit) are woken by a
    connection closing on C, oldest first across hosts, one per free slot."""
    r = rig(PoolLimits(max_connections=3))
    conns = {}
    for host in (A, B, C):
        r.pools.get(host, None).acquire(Waiter(host.label))
        conns[host.label] = r.connector.succeed()
    on_b, on_a = Waiter("on B"), Waiter("on A")
    r.pools.get(B, None).acquire(on_b)
    r.pools.get(A, None).acquire(on_a)
    assert r.counts() == (3, 2) and r.connector.attempts == []
    conns[C.label].lost()
    assert [a.host for a in r.connector.attempts] == [B] and r.counts() == (3, 1)
    r.connector.succeed()
    assert on_b.conn is not None and on_a.conn is None
    conns[B.label].lost()  # B's own queue is empty: the slot goes to A's waiter
    assert [a.host for a in r.connector.attempts] == [A] and r.counts() == (3, 0)


def test_a_queued_request_takes_the_slot_of_an_idle_connection_elsewhere() -> None:
    """At the limit with A busy and B idle, a request for A does not wait for A: B's idle
    connection is closed and its slot opens a connection to A."""
    r = rig(PoolLimits(max_connections=2))
    r.pools.get(A, None).acquire(Waiter("a"))
    r.connector.succeed()
    r.pools.get(B, None).acquire(Waiter("b"))
    idle_b = r.connector.succeed()
    idle_b.finish()
    waiting = Waiter("a2")
    r.pools.get(A, None).acquire(waiting)
    assert idle_b.closed and r.counts() == (2, 1)
    idle_b.lost()
    assert [a.host for a in r.connector.attempts] == [A]
    conn = r.connector.succeed()
    assert waiting.conn is conn and r.counts() == (2, 0)


def test_closing_a_pool_fails_its_queue_and_closes_idle_connections() -> None:
    """Host removed: queued requests fail as connect failures (so they may retry elsewhere),
    busy connections close after their response; closing all pools closes idle connections."""
    r = rig(PoolLimits(max_connections=3))
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("1"))
    first = r.connector.succeed()
    pool.acquire(Waiter("2"))
    second = r.connector.succeed()
    r.pools.get(B, None).acquire(Waiter("b"))
    idle_b = r.connector.succeed()
    idle_b.finish()
    queued = Waiter("queued")
    pool.acquire(queued)  # at the limit; B's idle connection is closed for it
    idle_b.lost()
    assert r.connector.attempts and r.counts() == (3, 0)
    late = Waiter("late")
    pool.acquire(late)
    assert r.counts() == (3, 1)
    r.pools.retain_hosts({B.key})
    assert late.failure == ("upstream host removed", False)
    assert r.counts() == (3, 0) and [p.host for p in r.pools.pools.values()] == [B]
    first.finish()
    second.finish()
    assert first.closed and second.closed and r.counts() == (1, 0)
    r.connector.succeed()  # the attempt for ``queued`` still completes and is served
    assert queued.conn is not None
    b_pool = r.pools.get(B, None)
    b_pool.acquire(Waiter("b2"))
    again = r.connector.succeed()
    again.finish()
    r.pools.close()
    assert again.closed and len(r.pools) == 0


def test_a_closed_pool_keeps_nothing_handed_back_to_it() -> None:
    """A connection released to a closed pool (an abandoned request's) is closed, not kept
    idle; a stopped cluster still serves a late request but pools nothing for later."""
    r = rig()
    pool = r.pools.get(A, None)
    pool.acquire(Waiter("1"))
    conn = r.connector.succeed()
    r.pools.close()
    pool.release(conn)
    assert conn.closed and pool.idle == []
    late = r.pools.get(A, None)
    assert late is not pool and len(r.pools) == 0
    waiter = Waiter("late")
    late.acquire(waiter)
    again = r.connector.succeed()
    assert waiter.conn is again
    again.finish()
    assert again.closed and late.idle == []
