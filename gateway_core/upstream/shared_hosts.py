"""Control path (fed by the data path): host state shared between supervisor and workers.

With ``--workers N`` the supervisor's clusters are the only ones that resolve DNS, run active
health checks and decide outlier ejections (Envoy's main thread); the workers' clusters are
*followers* that take host membership and health from the supervisor:

* ``host_rows`` / ``apply_host_rows``: a cluster's hosts as plain rows, and how a follower
  cluster adopts them (surviving ``Host`` objects are kept, so pools and active-request counts
  carry over; only flags changed -> one load-balancer update);
* ``ReportingMonitor``: a follower host's outlier monitor; the data path's O(1) report appends
  the outcome code to a list and never decides anything;
* ``OutcomeSink``: collects the monitors with new codes; the worker sends them in batches
  (every ``FLUSH_INTERVAL`` or ``FLUSH_EVENTS`` outcomes), and ``replay_outcomes`` feeds them,
  in order per host, into the supervisor's detector;
* ``share_limits``: each worker's share of the circuit-breaker limits (``ceil(limit / N)``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from gateway_core.snapshot import (
    UNLIMITED,
    ClusterSpec,
    Locality,
    OutlierPolicy,
    PoolLimits,
    Snapshot,
    frozen_labels,
)
from gateway_core.upstream.host import Host
from gateway_core.upstream.outlier import HostMonitor, LocalOrigin, OutlierDetector


class Cluster(Protocol):
    """What this module needs of ``upstream.cluster.Cluster``."""

    spec: ClusterSpec
    hosts: list[Host]
    host_by_label: dict[str, Host]
    outlier: OutlierDetector | None

    def set_hosts(self, hosts: list[Host]) -> None: ...

    def on_host_change(self, host: Host | None) -> None: ...


HostRow = tuple[str, int, int, str, dict[str, str], int, int, str | None, bool, bool]
"""address, port, weight, locality, labels, priority, locality weight, hostname, ejected,
health-check failed."""
FLUSH_INTERVAL = 0.1
FLUSH_EVENTS = 4096
LOCAL_CODES: dict[LocalOrigin, int] = {
    LocalOrigin.CONNECT_FAILED: -1,
    LocalOrigin.TIMEOUT: -2,
    LocalOrigin.RESET: -3,
    LocalOrigin.CONNECT_SUCCESS: -4,
}
_ORIGINS = {code: origin for origin, code in LOCAL_CODES.items()}


def host_rows(hosts: Iterable[Host]) -> list[HostRow]:
    return [
        (
            h.address,
            h.port,
            h.weight,
            str(h.locality),
            dict(h.labels),
            h.priority,
            h.locality_weight,
            h.hostname,
            h.ejected,
            h.hc_failed,
        )
        for h in hosts
    ]


def apply_host_rows(cluster: Cluster, rows: list[HostRow]) -> None:
    """Make a follower cluster's hosts exactly ``rows`` (membership, attributes and health)."""
    current = {h.key: h for h in cluster.hosts}
    hosts: list[Host] = []
    membership = len(rows) != len(current)
    for address, port, weight, locality, labels, priority, lw, hostname, ejected, hc in rows:
        host = current.get((address, port))
        attrs = (weight, Locality.parse(locality), priority, lw, hostname)
        if host is None or (
            (host.weight, host.locality, host.priority, host.locality_weight, host.hostname)
            != attrs
            or dict(host.labels) != labels
        ):
            if host is None:
                host = Host(address, port)
            host.weight, host.locality, host.priority, host.locality_weight, host.hostname = attrs
            host.labels = frozen_labels(labels)
            membership = True
        host.ejected = ejected
        host.hc_failed = hc
        hosts.append(host)
    if membership:
        cluster.set_hosts(hosts)
    else:
        cluster.on_host_change(None)


class OutcomeSink:
    """Monitors that recorded outcomes since the last ``drain`` (worker side)."""

    __slots__ = ("dirty", "events", "on_full")

    def __init__(self, on_full: Callable[[], None] = lambda: None) -> None:
        self.dirty: list[ReportingMonitor] = []
        self.events = 0
        self.on_full = on_full
        """Called once the batch holds ``FLUSH_EVENTS`` outcomes (the worker flushes early)."""

    def drain(self) -> list[tuple[str, str, list[int]]]:
        batch = []
        for monitor in self.dirty:
            batch.append((monitor.cluster, monitor.host, monitor.codes))
            monitor.codes = []
        self.dirty = []
        self.events = 0
        return batch


class ReportingMonitor(HostMonitor):
    """A follower host's monitor: records codes for the supervisor, never fires a check."""

    __slots__ = ("cluster", "codes", "host", "sink")

    def __init__(self, policy: OutlierPolicy, sink: OutcomeSink, cluster: str, host: str) -> None:
        super().__init__(policy)
        self.sink = sink
        self.cluster = cluster
        self.host = host
        self.codes: list[int] = []

    def record_status(self, status: int) -> bool:
        codes = self.codes
        if not codes:
            self.sink.dirty.append(self)
        codes.append(status)
        sink = self.sink
        sink.events += 1
        if sink.events == FLUSH_EVENTS:
            sink.on_full()
        return False

    def record_local(self, result: LocalOrigin) -> bool:
        return self.record_status(LOCAL_CODES[result])


def attach_reporters(cluster: Cluster, sink: OutcomeSink) -> None:
    """Give every host of a follower cluster with outlier detection a ``ReportingMonitor``."""
    policy = cluster.spec.outlier
    if policy is None:
        return
    for host in cluster.hosts:
        monitor = host.monitor
        if not isinstance(monitor, ReportingMonitor) or monitor.sink is not sink:
            host.monitor = ReportingMonitor(policy, sink, cluster.spec.key, host.label)


def replay_outcomes(
    clusters: Mapping[str, Cluster], batch: list[tuple[str, str, list[int]]]
) -> None:
    """Supervisor side: feed a worker's outcomes to the detectors, in order per host; the
    detector acts on each crossed threshold at once (as ``Cluster._check_soon`` would)."""
    for key, label, codes in batch:
        cluster = clusters.get(key)
        if cluster is None or cluster.outlier is None:
            continue
        host = cluster.host_by_label.get(label)
        monitor = host.monitor if host is not None else None
        if host is None or not isinstance(monitor, HostMonitor):
            continue
        for code in codes:
            fired = (
                monitor.record_status(code)
                if code >= 0
                else monitor.record_local(_ORIGINS.get(code, LocalOrigin.RESET))
            )
            if fired:
                cluster.outlier.check(host)


def share_limits(snapshot: Snapshot, workers: int) -> Snapshot:
    """The snapshot with every cluster's circuit-breaker limits divided among ``workers``
    (``ceil(limit / workers)``; unlimited stays unlimited)."""
    if workers <= 1:
        return snapshot
    clusters = {
        key: dataclasses.replace(spec, limits=worker_limits(spec.limits, workers))
        for key, spec in snapshot.clusters.items()
    }
    return dataclasses.replace(snapshot, clusters=clusters)


def worker_limits(limits: PoolLimits, workers: int) -> PoolLimits:
    def share(value: int) -> int:
        return value if value >= UNLIMITED else max(1, math.ceil(value / workers))

    return dataclasses.replace(
        limits,
        max_connections=share(limits.max_connections),
        max_pending_requests=share(limits.max_pending_requests),
        max_requests=share(limits.max_requests),
        max_retries=share(limits.max_retries),
    )
