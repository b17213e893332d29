"""Outlier detection: error counting, ejection caps, backoff, sweeps (FakeClock, stepwise)."""

from __future__ import annotations

import pytest

from gateway_core.snapshot import OutlierPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.outlier import (
    EjectionType,
    HostMonitor,
    LocalOrigin,
    OutlierDetector,
)
from gateway_core.utils.clock import FakeClock


def _monitor(**policy: int | bool) -> HostMonitor:
    return HostMonitor(OutlierPolicy(**policy))  # type: ignore[arg-type]


class Harness:
    """A detector over N hosts that records every on_change call."""

    def __init__(self, count: int, **policy: float | int | bool) -> None:
        self.clock = FakeClock(0.0)
        self.changes: list[tuple[str, bool]] = []
        self.policy = OutlierPolicy(**policy)  # type: ignore[arg-type]
        self.detector = OutlierDetector(self.policy, self.clock, self._changed)
        self.hosts = [Host(f"10.0.0.{i}", 80) for i in range(count)]
        self.detector.set_hosts(self.hosts)

    def _changed(self, host: Host) -> None:
        self.changes.append((host.address, host.ejected))

    def monitor(self, host: Host) -> HostMonitor:
        assert isinstance(host.monitor, HostMonitor)
        return host.monitor

    def fail(self, host: Host, status: int = 500) -> None:
        """Send errors until a threshold fires, then run the detector check."""
        for _ in range(100):
            if self.monitor(host).record_status(status):
                self.detector.check(host)
                return
        raise AssertionError("threshold never reached")

    def tick(self, seconds: float) -> None:
        """Advance in interval steps, sweeping at each."""
        steps = round(seconds / self.policy.interval)
        for _ in range(steps):
            self.clock.advance(self.policy.interval)
            self.detector.sweep()

    def ejected_for(self, host: Host) -> float:
        """Sweep every interval until the host is back; return how long it was out."""
        start = self.clock.now
        while host.ejected:
            self.tick(self.policy.interval)
        return self.clock.now - start


def test_consecutive_5xx_fires_exactly_at_threshold() -> None:
    """The fifth 5xx in a row reports the crossing once; a success resets the count."""
    monitor = _monitor(consecutive_5xx=5)
    assert [monitor.record_status(503) for _ in range(6)] == [False] * 4 + [True, False]
    monitor.reset()
    assert not any(monitor.record_status(500) for _ in range(4))
    monitor.record_status(200)
    assert not any(monitor.record_status(500) for _ in range(4))
    assert monitor.record_status(500)


def test_gateway_errors_count_only_502_503_504() -> None:
    """consecutiveGatewayErrors: 502/503/504 count, a 500 resets the gateway counter."""
    monitor = _monitor(consecutive_5xx=0, consecutive_gateway=3)
    assert not monitor.record_status(502)
    assert not monitor.record_status(504)
    assert not monitor.record_status(500)
    assert monitor.consecutive_gateway == 0
    assert [monitor.record_status(503) for _ in range(3)] == [False, False, True]
    assert monitor.pending == [EjectionType.CONSECUTIVE_GATEWAY]


def test_non_split_local_failures_count_as_5xx() -> None:
    """Non-split mode: 2 timeouts + one 500 = 3 consecutive errors; timeouts are gateway errors."""
    monitor = _monitor(consecutive_5xx=3, consecutive_gateway=2)
    assert not monitor.record_local(LocalOrigin.TIMEOUT)
    assert monitor.record_local(LocalOrigin.CONNECT_FAILED)
    assert monitor.pending == [EjectionType.CONSECUTIVE_GATEWAY]
    assert monitor.record_status(500)
    assert monitor.pending[-1] is EjectionType.CONSECUTIVE_5XX
    assert not monitor.record_local(LocalOrigin.CONNECT_SUCCESS)
    assert monitor.consecutive_5xx == 3


def test_reset_counts_like_connect_failure() -> None:
    """A reset upstream stream is a connect failure (503) in non-split mode."""
    monitor = _monitor(consecutive_5xx=2)
    monitor.record_local(LocalOrigin.RESET)
    assert (monitor.consecutive_5xx, monitor.consecutive_gateway) == (1, 1)


def test_split_mode_separates_local_origin_errors() -> None:
    """Split mode: local failures feed only their own counter; a connect success resets it."""
    monitor = _monitor(consecutive_5xx=2, consecutive_local_origin=3, split_local_origin=True)
    monitor.record_local(LocalOrigin.TIMEOUT)
    monitor.record_local(LocalOrigin.TIMEOUT)
    assert (monitor.consecutive_5xx, monitor.consecutive_local_origin) == (0, 2)
    monitor.record_local(LocalOrigin.CONNECT_SUCCESS)
    assert monitor.consecutive_local_origin == 0
    assert [monitor.record_local(LocalOrigin.RESET) for _ in range(3)] == [False, False, True]
    assert monitor.pending == [EjectionType.CONSECUTIVE_LOCAL_ORIGIN]
    assert not monitor.record_status(500)
    assert monitor.record_status(503)


def test_zero_threshold_disables_a_detector() -> None:
    """consecutive5xxErrors: 0 never fires."""
    monitor = _monitor(consecutive_5xx=0)
    assert not any(monitor.record_status(500) for _ in range(20))


def test_data_path_never_ejects_by_itself() -> None:
    """Crossing a threshold only reports it; the host is ejected by check()."""
    h = Harness(3, max_ejection_percent=100)
    host = h.hosts[0]
    assert [h.monitor(host).record_status(500) for _ in range(5)][-1]
    assert h.changes == []
    h.detector.check(host)
    assert h.changes == [("10.0.0.0", True)]
    assert h.monitor(host).consecutive_5xx == 0


def test_check_on_ejected_host_is_ignored() -> None:
    """A crossing reported while the host is already ejected changes nothing."""
    h = Harness(3, consecutive_5xx=1, max_ejection_percent=100)
    host = h.hosts[0]
    h.fail(host)
    h.fail(host)
    assert h.changes == [("10.0.0.0", True)]
    assert h.detector.stats().ejections_total == 1


@pytest.mark.parametrize(
    ("count", "percent", "cap"),
    [(3, 10, 1), (10, 10, 1), (20, 10, 2), (3, 50, 2), (10, 50, 5), (3, 100, 3), (10, 0, 0)],
)
def test_max_ejection_percent_caps(count: int, percent: int, cap: int) -> None:
    """At most ceil(p * N / 100) hosts are ejected (at least one when p > 0); the rest overflow."""
    h = Harness(count, consecutive_5xx=1, max_ejection_percent=percent)
    for host in h.hosts:
        h.fail(host)
    stats = h.detector.stats()
    assert sum(host.ejected for host in h.hosts) == cap
    assert (stats.ejections_active, stats.ejections_total, stats.ejections_overflow) == (
        cap,
        cap,
        count - cap,
    )


def test_backoff_grows_thirty_sixty_ninety_capped_at_300() -> None:
    """Re-ejected before any healthy tick: 30, 60, 90, ... then capped at 300s."""
    h = Harness(
        1, consecutive_5xx=1, max_ejection_percent=100, interval=10.0, base_ejection_time=30.0
    )
    host = h.hosts[0]
    durations = []
    for _ in range(12):
        h.fail(host)
        durations.append(h.ejected_for(host))
    assert durations == [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300, 300]


def test_backoff_decrements_on_healthy_ticks() -> None:
    """Each tick that finds the host not ejected takes one step off the next ejection."""
    h = Harness(
        1, consecutive_5xx=1, max_ejection_percent=100, interval=10.0, base_ejection_time=30.0
    )
    host = h.hosts[0]
    h.fail(host)
    assert h.ejected_for(host) == 30
    h.tick(10)
    h.fail(host)
    assert h.ejected_for(host) == 30
    h.fail(host)
    assert h.ejected_for(host) == 60
    h.tick(10)
    h.fail(host)
    assert h.ejected_for(host) == 60
    h.tick(40)
    h.fail(host)
    assert h.ejected_for(host) == 30


def test_istio_sample_three_minute_base() -> None:
    """baseEjectionTime 3m: first ejection 180s, the second min(360, max(300, 180)) = 300s."""
    h = Harness(
        1, consecutive_5xx=1, max_ejection_percent=100, interval=1.0, base_ejection_time=180.0
    )
    host = h.hosts[0]
    h.fail(host)
    assert h.ejected_for(host) == 180
    h.fail(host)
    assert h.ejected_for(host) == 300


def test_unejection_waits_for_the_next_tick() -> None:
    """Ejected 5s after a tick: 30s elapse between ticks, so it returns at the 40s tick (35s)."""
    h = Harness(
        2, consecutive_5xx=1, max_ejection_percent=100, interval=10.0, base_ejection_time=30.0
    )
    host = h.hosts[0]
    h.clock.advance(5)
    h.fail(host)
    for now in (10, 20, 30):
        h.clock.now = now
        h.detector.sweep()
        assert host.ejected
    h.clock.now = 40
    h.detector.sweep()
    assert not host.ejected
    assert h.changes == [("10.0.0.0", True), ("10.0.0.0", False)]


def test_unejection_resets_counters() -> None:
    """After un-ejection the host needs a full run of errors again."""
    h = Harness(1, consecutive_5xx=3, max_ejection_percent=100)
    host = h.hosts[0]
    h.fail(host)
    h.monitor(host).record_status(500)
    h.ejected_for(host)
    assert h.monitor(host).consecutive_5xx == 0
    assert not h.monitor(host).record_status(500)


def test_set_hosts_keeps_surviving_state() -> None:
    """Survivors keep counters and ejection (even as new Host objects); removed ones are dropped."""
    h = Harness(3, consecutive_5xx=1, max_ejection_percent=100)
    h.fail(h.hosts[0])
    h.fail(h.hosts[1])
    h.monitor(h.hosts[2]).record_status(500)
    replacement = Host("10.0.0.0", 80)
    h.detector.set_hosts([replacement, h.hosts[2], Host("10.0.0.9", 80)])
    assert replacement.ejected
    assert replacement.monitor is h.hosts[0].monitor
    assert h.detector.stats().ejections_active == 1
    assert isinstance(h.hosts[2].monitor, HostMonitor)
    assert h.hosts[2].monitor.pending
    h.detector.check(h.hosts[1])
    assert h.detector.stats().ejections_total == 2


def test_uneject_now_for_passing_health_check() -> None:
    """uneject() returns an ejected host immediately and reports it."""
    h = Harness(2, consecutive_5xx=1, max_ejection_percent=100)
    host = h.hosts[0]
    h.fail(host)
    h.detector.uneject(host)
    assert not host.ejected
    assert h.changes[-1] == ("10.0.0.0", False)


def test_stats_count_by_type() -> None:
    """Ejections are counted per detector type."""
    h = Harness(4, consecutive_5xx=0, consecutive_gateway=2, max_ejection_percent=100)
    h.fail(h.hosts[0], status=502)
    by_type = dict(h.detector.stats().ejections_by_type)
    assert by_type[EjectionType.CONSECUTIVE_GATEWAY] == 1
    assert by_type[EjectionType.CONSECUTIVE_5XX] == 0
