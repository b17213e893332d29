"""Tests: host state shared by supervisor and workers -- rows, follower clusters, outcome
batches replayed into the supervisor's outlier detector, circuit-breaker shares."""

from __future__ import annotations

import random

from gateway_core.snapshot import (
    UNLIMITED,
    ClusterSpec,
    Discovery,
    EndpointSpec,
    Locality,
    NodeInfo,
    OutlierPolicy,
    PoolLimits,
    Snapshot,
)
from gateway_core.upstream.client_tls import ClientContextStore
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.discovery import DnsResolver
from gateway_core.upstream.outlier import LocalOrigin
from gateway_core.upstream.shared_hosts import (
    FLUSH_EVENTS,
    OutcomeSink,
    ReportingMonitor,
    apply_host_rows,
    host_rows,
    replay_outcomes,
    share_limits,
    worker_limits,
)
from gateway_core.utils.clock import FakeClock
from tests.gateway_core.upstream.pool_fakes import FakeConnector

KEY = "outbound|80||svc"


def _spec(discovery: Discovery = Discovery.STATIC, **extra: object) -> ClusterSpec:
    return ClusterSpec(
        key=KEY,
        service_host="svc",
        port=80,
        subset=None,
        discovery=discovery,
        endpoints=(EndpointSpec("10.0.0.1", 80), EndpointSpec("10.0.0.2", 80)),
        **extra,  # type: ignore[arg-type]
    )


def _cluster(spec: ClusterSpec, follower: OutcomeSink | None = None) -> Cluster:
    return Cluster(
        spec,
        rng=random.Random(1),
        clock=FakeClock(),
        resolver=DnsResolver(hosts_file=None),
        connector=FakeConnector(),
        tls_store=ClientContextStore(),
        follower=follower,
    )


def test_a_follower_takes_membership_and_health_from_rows() -> None:
    """The supervisor's DNS cluster resolved three hosts, one failing its health check and
    one ejected; the follower (which never resolves) ends up with exactly that."""
    leader = _cluster(_spec())
    leader.hosts[0].hc_failed = True
    rows = host_rows(leader.hosts)
    rows.append(("10.0.0.3", 80, 5, "r/z", {"app": "x"}, 1, 0, "svc.example", False, False))
    follower = _cluster(_spec(Discovery.DNS), OutcomeSink())
    assert follower.discovery is None and follower.health is None and follower.hosts == []
    changes: list[Cluster] = []
    follower.on_change = changes.append
    apply_host_rows(follower, rows)
    assert [h.label for h in follower.hosts] == ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
    third = follower.hosts[2]
    assert (third.weight, third.locality, third.priority, third.hostname) == (
        5,
        Locality("r", "z"),
        1,
        "svc.example",
    )
    assert dict(third.labels) == {"app": "x"}
    assert [h.healthy for h in follower.hosts] == [False, True, True]
    assert follower.healthy_hosts == 2 and changes == [follower]
    kept = follower.hosts[1]
    kept.active_requests = 3
    flags_only = [(*row[:8], True, False) if row[0] == "10.0.0.2" else row for row in rows]
    apply_host_rows(follower, flags_only)
    assert follower.hosts[1] is kept and kept.ejected and kept.active_requests == 3
    assert follower.healthy_hosts == 1 and len(changes) == 2


def test_outcomes_are_batched_in_the_worker_and_decided_by_the_supervisor() -> None:
    """A follower's data path only appends codes; replayed in order into the supervisor's
    cluster they cross consecutive5xx there, and the ejection reaches the follower by rows."""
    policy = OutlierPolicy(consecutive_5xx=3, max_ejection_percent=100)
    leader = _cluster(_spec(outlier=policy))
    sink = OutcomeSink()
    follower = _cluster(_spec(outlier=policy), sink)
    assert follower.outlier is None
    bad, good = follower.hosts
    assert isinstance(bad.monitor, ReportingMonitor)
    follower.record_status(bad, 503)
    follower.record_local(bad, LocalOrigin.CONNECT_FAILED)
    follower.record_status(good, 200)
    follower.record_status(bad, 500)
    assert not bad.ejected  # a follower never decides
    batch = sink.drain()
    assert batch == [(KEY, "10.0.0.1:80", [503, -1, 500]), (KEY, "10.0.0.2:80", [200])]
    assert sink.drain() == []
    replay_outcomes({KEY: leader}, batch)
    assert [h.ejected for h in leader.hosts] == [True, False]
    assert leader.outlier is not None and leader.outlier.stats().ejections_total == 1
    apply_host_rows(follower, host_rows(leader.hosts))
    assert bad.ejected and follower.healthy_hosts == 1


def test_a_full_batch_asks_for_an_early_flush() -> None:
    flushes: list[int] = []
    sink = OutcomeSink(lambda: flushes.append(sink.events))
    follower = _cluster(_spec(outlier=OutlierPolicy()), sink)
    for _ in range(FLUSH_EVENTS + 10):
        follower.record_status(follower.hosts[0], 200)
    assert flushes == [FLUSH_EVENTS]


def test_without_outlier_detection_nothing_is_recorded() -> None:
    sink = OutcomeSink()
    follower = _cluster(_spec(), sink)
    follower.record_status(follower.hosts[0], 503)
    assert follower.hosts[0].monitor is None and sink.drain() == []


def test_each_worker_gets_a_rounded_up_share_of_the_breakers() -> None:
    limits = PoolLimits(max_connections=10, max_pending_requests=1, max_requests=3)
    shared = worker_limits(limits, 4)
    assert (shared.max_connections, shared.max_pending_requests, shared.max_requests) == (3, 1, 1)
    assert shared.max_retries == UNLIMITED  # Istio's default stays unlimited
    snapshot = Snapshot(
        version="v",
        node=NodeInfo(),
        listeners=(),
        route_tables={},
        clusters={KEY: _spec(limits=limits)},
    )
    assert share_limits(snapshot, 1) is snapshot
    assert share_limits(snapshot, 2).clusters[KEY].limits.max_connections == 5
    assert share_limits(snapshot, 2).version == "v"
