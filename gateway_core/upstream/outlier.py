"""Control path (fed by the data path): Envoy outlier detection for one cluster.

The data path only *reports*: after each upstream attempt it calls ``HostMonitor.record_status``
or ``record_local`` on the host's monitor, O(1), never ejecting anything itself. When a
consecutive-error threshold is reached exactly, the call returns True and the caller schedules
``OutlierDetector.check(host)`` (Envoy posts the same event to its main thread).

Error classes (Envoy's outlier detection architecture overview and ``outlier_detection.proto``;
Istio's translation: ``applyOutlierDetection`` in istio/istio
``pilot/pkg/networking/core/cluster_traffic_policy.go``):

* non-split mode (default): a local-origin failure counts as an upstream 5xx -- connect failure
  and reset as 503, timeout as 504 -- so it feeds both ``consecutive_5xx`` and
  ``consecutive_gateway``; two timeouts then a 500 are three consecutive 5xx errors;
* split mode: upstream statuses feed ``consecutive_5xx`` / ``consecutive_gateway``, local-origin
  failures feed ``consecutive_local_origin`` only, and a successful connect resets the latter;
* ``consecutive_gateway`` counts only 502/503/504; any other 5xx resets it, any non-5xx resets
  both. A threshold of 0 disables that detector.

Ejection is allowed while ``100 * ejected < max_ejection_percent * hosts`` (at most
``ceil(p * N / 100)`` hosts, at least one if p > 0). Each ejection bumps a backoff counter (while
``backoff * base < max + base``); a host is un-ejected at the first ``sweep`` where
``now - ejected_at >= min(base * backoff, max)``, and every sweep that finds it not ejected
decrements the backoff. With base 30s, max 300s: ejections last 30, 60, 90, ... 300s, and one
healthy interval after an un-ejection brings the next ejection back down by one step.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway_core.snapshot import OutlierPolicy
from gateway_core.upstream.host import Host, HostKey
from gateway_core.utils.clock import Clock


class LocalOrigin(enum.Enum):
    """Outcomes the gateway observes itself, before or instead of an upstream status."""

    CONNECT_FAILED = "connect_failed"
    TIMEOUT = "timeout"
    RESET = "reset"
    CONNECT_SUCCESS = "connect_success"


class EjectionType(enum.StrEnum):
    CONSECUTIVE_5XX = "consecutive_5xx"
    CONSECUTIVE_GATEWAY = "consecutive_gateway_failure"
    CONSECUTIVE_LOCAL_ORIGIN = "consecutive_local_origin_failure"


GATEWAY_ERRORS = frozenset({502, 503, 504})
_LOCAL_AS_STATUS = {
    LocalOrigin.CONNECT_FAILED: 503,
    LocalOrigin.RESET: 503,
    LocalOrigin.TIMEOUT: 504,
}


class HostMonitor:
    """Per-host counters the data path writes to; the detector keeps ejection state here too."""

    __slots__ = (
        "backoff",
        "consecutive_5xx",
        "consecutive_gateway",
        "consecutive_local_origin",
        "ejected_at",
        "num_ejections",
        "pending",
        "policy",
    )

    def __init__(self, policy: OutlierPolicy) -> None:
        self.policy = policy
        self.consecutive_5xx = 0
        self.consecutive_gateway = 0
        self.consecutive_local_origin = 0
        self.pending: list[EjectionType] = []
        """Thresholds crossed since the last ``check``, in the order they fired."""
        self.backoff = 0
        self.ejected_at = 0.0
        self.num_ejections = 0

    def record_status(self, status: int) -> bool:
        """An upstream response status; True when a consecutive threshold was just reached."""
        if not 500 <= status <= 599:
            self.consecutive_5xx = 0
            self.consecutive_gateway = 0
            return False
        fired = False
        if status in GATEWAY_ERRORS:
            self.consecutive_gateway += 1
            if self.consecutive_gateway == self.policy.consecutive_gateway:
                self.pending.append(EjectionType.CONSECUTIVE_GATEWAY)
                fired = True
        else:
            self.consecutive_gateway = 0
        self.consecutive_5xx += 1
        if self.consecutive_5xx == self.policy.consecutive_5xx:
            self.pending.append(EjectionType.CONSECUTIVE_5XX)
            fired = True
        return fired

    def record_local(self, result: LocalOrigin) -> bool:
        """A local-origin outcome; True when a consecutive threshold was just reached."""
        if not self.policy.split_local_origin:
            status = _LOCAL_AS_STATUS.get(result)
            return False if status is None else self.record_status(status)
        if result is LocalOrigin.CONNECT_SUCCESS:
            self.consecutive_local_origin = 0
            return False
        self.consecutive_local_origin += 1
        if self.consecutive_local_origin == self.policy.consecutive_local_origin:
            self.pending.append(EjectionType.CONSECUTIVE_LOCAL_ORIGIN)
            return True
        return False

    def reset(self, kind: EjectionType | None = None) -> None:
        """Zero one counter (after its ejection attempt) or all of them (on un-ejection)."""
        if kind in (None, EjectionType.CONSECUTIVE_5XX):
            self.consecutive_5xx = 0
        if kind in (None, EjectionType.CONSECUTIVE_GATEWAY):
            self.consecutive_gateway = 0
        if kind in (None, EjectionType.CONSECUTIVE_LOCAL_ORIGIN):
            self.consecutive_local_origin = 0
        if kind is None:
            self.pending.clear()


@dataclass(frozen=True, slots=True)
class OutlierStats:
    """Envoy's ``outlier_detection.*`` stats for one cluster."""

    ejections_active: int
    ejections_total: int
    """Enforced ejections since the detector was created."""
    ejections_overflow: int
    """Ejections refused by ``max_ejection_percent``."""
    ejections_by_type: tuple[tuple[EjectionType, int], ...]


class OutlierDetector:
    """Decides ejections for one cluster; sets ``Host.ejected`` and reports every change."""

    def __init__(
        self, policy: OutlierPolicy, clock: Clock, on_change: Callable[[Host], None]
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._on_change = on_change
        self._hosts: dict[HostKey, Host] = {}
        self._total = 0
        self._overflow = 0
        self._by_type = dict.fromkeys(EjectionType, 0)

    @property
    def max_ejection_time(self) -> float:
        """Envoy: ``max_ejection_time`` (300s unless configured), never below the base time."""
        return max(self.policy.max_ejection_time, self.policy.base_ejection_time)

    def set_hosts(self, hosts: Iterable[Host]) -> None:
        """Track exactly ``hosts``; state of surviving keys (counters, ejection) is kept, also
        when the cluster rebuilt the Host object, and removed hosts are forgotten."""
        tracked: dict[HostKey, Host] = {}
        for host in hosts:
            old = self._hosts.get(host.key)
            if old is not None and old is not host and isinstance(old.monitor, HostMonitor):
                host.monitor = old.monitor
                host.ejected = old.ejected
            elif not isinstance(host.monitor, HostMonitor):
                host.monitor = HostMonitor(self.policy)
            assert isinstance(host.monitor, HostMonitor)
            host.monitor.policy = self.policy
            tracked[host.key] = host
        self._hosts = tracked

    def check(self, host: Host) -> None:
        """Act on the thresholds ``host`` crossed: eject it if ``max_ejection_percent`` allows,
        and reset each crossed counter. A host that is already ejected, or no longer tracked,
        is left alone (Envoy drops the event; counters reset when it is un-ejected)."""
        monitor = host.monitor
        if self._hosts.get(host.key) is not host or not isinstance(monitor, HostMonitor):
            return
        while monitor.pending:
            kind = monitor.pending.pop(0)
            if host.ejected:
                continue
            self._eject(host, monitor, kind)
            monitor.reset(kind)

    def sweep(self) -> None:
        """Run every ``policy.interval``: un-eject hosts whose ejection time has elapsed and
        decrement the backoff of hosts that are not ejected at this tick."""
        now = self._clock.monotonic()
        base = self.policy.base_ejection_time
        for host in list(self._hosts.values()):
            monitor = host.monitor
            if not isinstance(monitor, HostMonitor):
                continue
            if not host.ejected:
                if monitor.backoff:
                    monitor.backoff -= 1
                continue
            if min(base * monitor.backoff, self.max_ejection_time) <= now - monitor.ejected_at:
                self._uneject(host, monitor)

    def uneject(self, host: Host) -> None:
        """Un-eject now (a passing active health check does this, as Envoy's default
        ``successful_active_health_check_uneject_host``)."""
        monitor = host.monitor
        if host.ejected and isinstance(monitor, HostMonitor) and host.key in self._hosts:
            self._uneject(host, monitor)

    def stats(self) -> OutlierStats:
        return OutlierStats(
            ejections_active=self._active(),
            ejections_total=self._total,
            ejections_overflow=self._overflow,
            ejections_by_type=tuple(self._by_type.items()),
        )

    def _active(self) -> int:
        return sum(1 for h in self._hosts.values() if h.ejected)

    def _eject(self, host: Host, monitor: HostMonitor, kind: EjectionType) -> None:
        max_percent = min(100, self.policy.max_ejection_percent)
        if 100 * self._active() >= max_percent * len(self._hosts):
            self._overflow += 1
            return
        host.ejected = True
        monitor.ejected_at = self._clock.monotonic()
        monitor.num_ejections += 1
        base = self.policy.base_ejection_time
        if monitor.backoff * base < self.max_ejection_time + base:
            monitor.backoff += 1
        self._total += 1
        self._by_type[kind] += 1
        self._on_change(host)

    def _uneject(self, host: Host, monitor: HostMonitor) -> None:
        host.ejected = False
        monitor.reset()
        self._on_change(host)
