"""Observability: every Prometheus metric of the gateway, declared in one place.

The data path bumps plain integers (no locks, no label lookups in prometheus_client); a
collector turns them into metric families when ``/stats/prometheus`` is scraped. The registry
is injected (never the global default), so tests get a fresh one. Names follow Envoy's stat
words and Prometheus conventions; every series carries ``tier``.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from operator import floordiv

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gateway_core.observability.authz_metrics import AuthzCollector, AuthzCounters
from gateway_core.observability.istio_metrics import IstioMetrics, SourceInfo

FOLD_EVERY = 256
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def family_buckets(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


@dataclass(slots=True)
class ClusterSample:
    """What the collector needs from one live cluster at scrape time."""

    key: str
    rq: dict[str, int]
    retries: int
    overflow: int
    connect_fail: int
    connect_timeout: int
    cx_active: int
    rq_active: int
    rq_pending: int
    ejections_active: int
    ejections_total: int
    hosts: int
    healthy_hosts: int
    cx_overflow: int = 0
    """Connections opened past ``maxConnections`` or refused by it (Envoy
    ``upstream_cx_overflow``)."""
    retry_overflow: int = 0
    """Retries refused by ``maxRetries`` (Envoy ``upstream_rq_retry_overflow``)."""
    extra_data: int = 0
    """Connections closed because the upstream sent bytes beyond its response."""


class GatewayMetrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        tier: str,
        wall_clock: Callable[[], float] = time.time,
        source: SourceInfo | None = None,
    ) -> None:
        self.tier = tier
        self.istio = IstioMetrics(source or SourceInfo(workload=f"{tier}-gateway"))
        """Istio's standard metrics (``istio_requests_total``, ...)."""
        self.wall_clock = wall_clock
        self.downstream_rq: dict[str, int] = {"1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0}
        self.downstream_rq_time = Histogram()
        self.local_replies: dict[str, int] = {}
        self.protocol_errors: dict[str, int] = {}
        self.internal_errors = 0
        """Unexpected exceptions in the gateway's own code (``proxy/errors.py``)."""
        self.config_reloads: dict[str, int] = {"success": 0, "rejected": 0}
        self.config_version = ""
        self.config_last_error = ""
        self.tls_reloads: dict[str, int] = {"success": 0, "rejected": 0}
        # (listener, server, certificate file, notAfter as a Unix time) per served certificate.
        self.tls_certificates: Callable[[], Iterable[tuple[str, str, str, float]]] = lambda: ()
        self.clusters_source: Callable[[], Iterable[ClusterSample]] = lambda: ()
        self.downstream_cx_active: Callable[[], int] = lambda: 0
        self.draining: Callable[[], bool] = lambda: False
        self.access_log_losses: Callable[[], tuple[int, int]] = lambda: (0, 0)
        """(lines dropped, write errors) of the access log's writer."""
        # (limit, requests let through, requests refused, descriptor buckets held) per limit.
        self.rate_limits: Callable[[], Iterable[tuple[str, int, int, int]]] = lambda: ()
        self._statuses: list[int] = []
        self._durations: list[float] = []
        registry.register(_Collector(self))
        self.authz = AuthzCounters()
        registry.register(AuthzCollector(self.authz, tier))

    def record_request(self, status: int, seconds: float, flags: Iterable[str]) -> None:
        """Status and duration are buffered and counted by ``fold`` in batches (every
        ``FOLD_EVERY`` requests, and before every scrape): cheaper than per request."""
        statuses = self._statuses
        statuses.append(status)
        self._durations.append(seconds)
        for flag in flags:
            self.local_replies[flag] = self.local_replies.get(flag, 0) + 1
        if len(statuses) >= FOLD_EVERY:
            self.fold()

    def fold(self) -> None:
        """Count the buffered requests into ``downstream_rq`` and the duration histogram."""
        statuses, self._statuses = self._statuses, []
        durations, self._durations = self._durations, []
        rq = self.downstream_rq
        for klass, count in Counter(map(floordiv, statuses, repeat(100))).items():
            # Statuses outside 100-599 count as 5xx (they have no class of their own).
            rq[_CLASSES.get(klass, "5xx")] += count
        histogram = self.downstream_rq_time
        for bucket, count in Counter(map(partial(bisect_left, BUCKETS), durations)).items():
            histogram.counts[bucket] += count
        histogram.total = sum(durations, histogram.total)  # in order, as one by one

    def record_protocol_error(self, status: int) -> None:
        key = str(status)
        self.protocol_errors[key] = self.protocol_errors.get(key, 0) + 1


_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class _Collector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        m.fold()
        tier = m.tier
        rq = CounterMetricFamily(
            "gateway_downstream_rq",
            "Downstream requests by status class",
            labels=["tier", "code_class"],
        )
        for klass, value in m.downstream_rq.items():
            rq.add_metric([tier, klass], value)
        yield rq
        hist = HistogramMetricFamily(
            "gateway_downstream_rq_time_seconds", "Downstream request duration", labels=["tier"]
        )
        hist.add_metric([tier], m.downstream_rq_time.family_buckets(), m.downstream_rq_time.total)
        yield hist
        flags = CounterMetricFamily(
            "gateway_response_flags", "Requests by Envoy response flag", labels=["tier", "flag"]
        )
        for flag, value in sorted(m.local_replies.items()):
            flags.add_metric([tier, flag], value)
        yield flags
        perr = CounterMetricFamily(
            "gateway_downstream_protocol_errors",
            "Rejected malformed requests by status",
            labels=["tier", "status"],
        )
        for status, value in sorted(m.protocol_errors.items()):
            perr.add_metric([tier, status], value)
        yield perr
        internal = CounterMetricFamily(
            "gateway_internal_errors",
            "Requests that hit an unexpected exception in the gateway's own code",
            labels=["tier"],
        )
        internal.add_metric([tier], m.internal_errors)
        yield internal
        cx = GaugeMetricFamily(
            "gateway_downstream_cx_active", "Open client connections", labels=["tier"]
        )
        cx.add_metric([tier], m.downstream_cx_active())
        yield cx
        reloads = CounterMetricFamily(
            "gateway_config_reloads", "Configuration reloads by result", labels=["tier", "result"]
        )
        for result, value in m.config_reloads.items():
            reloads.add_metric([tier, result], value)
        yield reloads
        info = GaugeMetricFamily(
            "gateway_config_info", "Active configuration version", labels=["tier", "version"]
        )
        info.add_metric([tier, m.config_version], 1)
        yield info
        bad = GaugeMetricFamily(
            "gateway_config_last_reload_failed",
            "1 when the last reload was rejected",
            labels=["tier"],
        )
        bad.add_metric([tier], 1 if m.config_last_error else 0)
        yield bad
        tls = CounterMetricFamily(
            "gateway_tls_reloads", "Certificate reloads by result", labels=["tier", "result"]
        )
        for result, value in m.tls_reloads.items():
            tls.add_metric([tier, result], value)
        yield tls
        expiry = GaugeMetricFamily(
            "gateway_tls_certificate_expiry_seconds",
            "Seconds until a served certificate's notAfter (negative once expired)",
            labels=["tier", "listener", "server", "cert_file"],
        )
        now = m.wall_clock()
        for listener, server, cert_file, not_after in m.tls_certificates():
            expiry.add_metric([tier, listener, server, cert_file], not_after - now)
        yield expiry
        drain = GaugeMetricFamily("gateway_draining", "1 while the gateway drains", labels=["tier"])
        drain.add_metric([tier], 1 if m.draining() else 0)
        yield drain
        yield from _access_log_families(tier, *m.access_log_losses())
        yield from _rate_limit_families(tier, list(m.rate_limits()))
        yield from _cluster_families(tier, list(m.clusters_source()))
        yield from m.istio.collect()


def _access_log_families(tier: str, dropped: int, errors: int) -> Iterator[Metric]:
    lost = CounterMetricFamily(
        "gateway_access_log_dropped_lines",
        "Access-log lines dropped because the log's reader was behind or a write failed",
        labels=["tier"],
    )
    lost.add_metric([tier], dropped)
    yield lost
    failed = CounterMetricFamily(
        "gateway_access_log_write_errors", "Access-log writes that failed", labels=["tier"]
    )
    failed.add_metric([tier], errors)
    yield failed


def _rate_limit_families(tier: str, samples: list[tuple[str, int, int, int]]) -> Iterator[Metric]:
    rq = CounterMetricFamily(
        "gateway_ratelimit_rq",
        "Requests checked by a LocalRateLimit, by result (ok, rate_limited)",
        labels=["tier", "limit", "result"],
    )
    keys = GaugeMetricFamily(
        "gateway_ratelimit_keys",
        "Descriptor buckets a LocalRateLimit holds (at most its maxKeys)",
        labels=["tier", "limit"],
    )
    for limit, ok, limited, held in samples:
        rq.add_metric([tier, limit, "ok"], ok)
        rq.add_metric([tier, limit, "rate_limited"], limited)
        keys.add_metric([tier, limit], held)
    yield rq
    yield keys


def _cluster_families(tier: str, samples: list[ClusterSample]) -> Iterator[Metric]:
    labels = ["tier", "cluster"]
    up = CounterMetricFamily(
        "gateway_upstream_rq", "Upstream responses by status class", labels=[*labels, "code_class"]
    )
    for s in samples:
        for klass, value in s.rq.items():
            up.add_metric([tier, s.key, klass], value)
    yield up
    specs: list[tuple[str, str, str, Callable[[ClusterSample], int]]] = [
        ("counter", "gateway_upstream_rq_retry", "Retries", lambda s: s.retries),
        (
            "counter",
            "gateway_upstream_rq_pending_overflow",
            "Requests refused by circuit breakers (UO)",
            lambda s: s.overflow,
        ),
        (
            "counter",
            "gateway_upstream_cx_overflow",
            "Times the connection breaker (maxConnections) was hit",
            lambda s: s.cx_overflow,
        ),
        (
            "counter",
            "gateway_upstream_rq_retry_overflow",
            "Retries refused by the retry breaker (maxRetries)",
            lambda s: s.retry_overflow,
        ),
        (
            "counter",
            "gateway_upstream_cx_connect_fail",
            "Failed upstream connects",
            lambda s: s.connect_fail,
        ),
        (
            "counter",
            "gateway_upstream_cx_connect_timeout",
            "Upstream connect timeouts",
            lambda s: s.connect_timeout,
        ),
        (
            "counter",
            "gateway_upstream_cx_extra_data",
            "Upstream connections closed for bytes beyond the response",
            lambda s: s.extra_data,
        ),
        ("gauge", "gateway_upstream_cx_active", "Open upstream connections", lambda s: s.cx_active),
        ("gauge", "gateway_upstream_rq_active", "Requests in flight", lambda s: s.rq_active),
        (
            "gauge",
            "gateway_upstream_rq_pending_active",
            "Requests waiting for a connection",
            lambda s: s.rq_pending,
        ),
        (
            "gauge",
            "gateway_outlier_ejections_active",
            "Hosts ejected now",
            lambda s: s.ejections_active,
        ),
        (
            "counter",
            "gateway_outlier_ejections",
            "Ejections since start",
            lambda s: s.ejections_total,
        ),
        ("gauge", "gateway_upstream_hosts", "Hosts in the cluster", lambda s: s.hosts),
        (
            "gauge",
            "gateway_upstream_hosts_healthy",
            "Hosts neither ejected nor failing health checks",
            lambda s: s.healthy_hosts,
        ),
    ]
    for kind, name, doc, get in specs:
        fam: CounterMetricFamily | GaugeMetricFamily
        fam = (
            CounterMetricFamily(name, doc, labels=labels)
            if kind == "counter"
            else GaugeMetricFamily(name, doc, labels=labels)
        )
        for s in samples:
            fam.add_metric([tier, s.key], get(s))
        yield fam
