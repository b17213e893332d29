"""Data path: Istio's standard metrics (``istio_requests_total`` and friends) as an Istio
ingress gateway reports them.

Names, types and label sets are Istio's (istio/proxy ``istio_stats`` filter, the outbound
"source" reporter that gateways use); buckets are Envoy's defaults, which Istio keeps for its
histograms. Every label value comes from this process's settings or the compiled config, never
from a request: an unknown host or path cannot create a series (``unknown`` stands in, as in
Istio). The request path pays a cached dictionary lookup per request: the label tuple of a
(cluster, host) pair is built once per configuration, the series of a (destination, protocol,
code, gRPC status, flags) combination once for the process lifetime.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from gateway_core.proxy.grpc import grpc_status_for

if TYPE_CHECKING:
    from gateway_core.snapshot import ClusterSpec
    from gateway_core.upstream.host import Host

UNKNOWN = "unknown"

SOURCE_LABELS = (
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
)
DESTINATION_LABELS = (
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
)
HTTP_LABELS = (
    *SOURCE_LABELS,
    *DESTINATION_LABELS,
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
TCP_LABELS = (
    *SOURCE_LABELS,
    *DESTINATION_LABELS,
    "request_protocol",
    "response_flags",
    "connection_security_policy",
)

ENVOY_BUCKETS = (
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
)  # fmt: skip
"""Envoy's default histogram buckets, which Istio uses for its ``istiocustom`` histograms."""

# A gateway never learns the peer's identity on its outbound side, so Istio's source reporter
# says "unknown" for the security policy (it is only known to the destination reporter).
_SECURITY_POLICY = UNKNOWN
CANONICAL_NAME = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
CANONICAL_REVISION = ("service.istio.io/canonical-revision", "app.kubernetes.io/version", "version")
CLUSTER_LABEL = "topology.istio.io/cluster"
_MAX_DESTINATIONS = 4096


_GRPC_CODES = {b"%d" % code: b"%d" % code for code in range(17)}
_GRPC_UNKNOWN = b"2"


def grpc_status_label(value: bytes | None, http_status: int) -> bytes:
    """``grpc_response_status`` of a gRPC request: the response's ``grpc-status`` when it is one
    of gRPC's codes 0-16, UNKNOWN for anything else an upstream sent (so it cannot grow the
    label's values), and when there was none, the code Envoy infers from the HTTP status."""
    if value is None:
        return b"%d" % grpc_status_for(http_status, None)
    return _GRPC_CODES.get(value, _GRPC_UNKNOWN)


def _first(labels: Mapping[str, str], keys: tuple[str, ...], default: str) -> str:
    for key in keys:
        value = labels.get(key)
        if value:
            return value
    return default


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Who this gateway is, for the ``source_*`` labels (constant for the process)."""

    workload: str
    namespace: str = ""
    cluster: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def values(self) -> tuple[str, ...]:
        labels = self.labels
        return (
            "source",
            self.workload,
            _first(labels, CANONICAL_NAME, self.workload),
            _first(labels, CANONICAL_REVISION, "latest"),
            self.namespace or UNKNOWN,
            UNKNOWN,  # source_principal: the workload's SPIFFE id, which this gateway has none of
            labels.get("app") or UNKNOWN,
            labels.get("version") or UNKNOWN,
            self.cluster or UNKNOWN,
        )


def destination_values(spec: ClusterSpec | None, host: Host | None) -> tuple[str, ...]:
    """The ``destination_*`` label values for a request sent to ``host`` of cluster ``spec``.

    From the config only: the service host of the cluster, the ServiceEntry that defines it
    (Istio names the workload of a ServiceEntry endpoint after the entry), the endpoint's labels
    (``version``, canonical name and revision, ``topology.istio.io/cluster``)."""
    if spec is None:
        return (UNKNOWN,) * 5 + (UNKNOWN, UNKNOWN, "latest", UNKNOWN, UNKNOWN, UNKNOWN)
    labels = host.labels if host is not None else _shared_labels(spec)
    service = spec.service_host
    name, namespace = service, ""
    parts = service.split(".")
    if len(parts) >= 4 and parts[2] == "svc":  # <name>.<namespace>.svc.<domain>: a Service
        name, namespace = parts[0], parts[1]
    workload = UNKNOWN
    if spec.service_entry is not None:
        namespace, workload = spec.service_entry
    canonical = _first(labels, CANONICAL_NAME, workload if workload != UNKNOWN else name)
    cluster = labels.get(CLUSTER_LABEL) or UNKNOWN
    return (
        workload,
        namespace or UNKNOWN,
        UNKNOWN,  # destination_principal: the peer's SPIFFE id, not checked on this side
        canonical,
        labels.get("version") or UNKNOWN,
        service,
        canonical,
        _first(labels, CANONICAL_REVISION, "latest"),
        name,
        namespace or UNKNOWN,
        cluster,
    )


def _shared_labels(spec: ClusterSpec) -> Mapping[str, str]:
    """The labels every endpoint of ``spec`` has in common (a request that failed before a
    host was chosen still names the subset's cluster and version)."""
    if not spec.endpoints:
        return {}
    first, *rest = spec.endpoints
    return {k: v for k, v in first.labels.items() if all(e.labels.get(k) == v for e in rest)}


class Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(ENVOY_BUCKETS) + 1)
        self.total = 0.0

    def buckets(self) -> list[tuple[str, float]]:
        out = []
        running = 0
        for bound, count in zip((*ENVOY_BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
        return out


class HttpSeries:
    """One label combination of the four HTTP metrics."""

    __slots__ = ("count", "duration", "request_bytes", "response_bytes")

    def __init__(self) -> None:
        self.count = 0
        self.duration = Histogram()
        self.request_bytes = Histogram()
        self.response_bytes = Histogram()


class TcpSeries:
    """One label combination of the four ``istio_tcp_*`` counters."""

    __slots__ = ("closed", "opened", "received", "sent")

    def __init__(self) -> None:
        self.opened = self.closed = self.sent = self.received = 0


class Destination:
    """A (cluster, host) pair's destination labels and its series cache (identity-hashed)."""

    __slots__ = ("http", "tcp", "values")

    def __init__(self, values: tuple[str, ...]) -> None:
        self.values = values
        self.http: dict[tuple[str, int, bytes | None, str], HttpSeries] = {}
        self.tcp: TcpSeries | None = None


class IstioMetrics:
    """The series of Istio's standard metrics, bumped by ``record_request`` and the tunnel
    calls, turned into metric families by ``collect`` when Prometheus scrapes."""

    def __init__(self, source: SourceInfo) -> None:
        self.source = source.values()
        self.http: dict[tuple[str, ...], HttpSeries] = {}
        self.tcp: dict[tuple[str, ...], TcpSeries] = {}
        self._destinations: dict[object, Destination] = {}
        self._unknown = Destination(destination_values(None, None))

    def reset_destinations(self) -> None:
        """Forget the cached destination labels (a new configuration is live). The series,
        and so every counter's value, stay."""
        self._destinations = {}

    def destination(self, spec: ClusterSpec | None, host: Host | None) -> Destination:
        if spec is None:
            return self._unknown
        key: object = host if host is not None else spec.key
        dest = self._destinations.get(key)
        if dest is None:
            if len(self._destinations) >= _MAX_DESTINATIONS:  # hosts churned by DNS
                self._destinations = {}
            dest = self._destinations[key] = Destination(destination_values(spec, host))
        return dest

    def record_request(
        self,
        dest: Destination,
        protocol: str,
        status: int,
        grpc_status: bytes | None,
        flags: str,
        millis: float,
        request_bytes: int,
        response_bytes: int,
    ) -> None:
        key = (protocol, status, grpc_status, flags)
        series = dest.http.get(key)
        if series is None:
            series = dest.http[key] = self._http_series(dest, key)
        series.count += 1
        # The three observations, inlined: this runs for every request.
        hist = series.duration
        hist.counts[bisect_left(ENVOY_BUCKETS, millis)] += 1
        hist.total += millis
        hist = series.request_bytes
        hist.counts[bisect_left(ENVOY_BUCKETS, request_bytes)] += 1
        hist.total += request_bytes
        hist = series.response_bytes
        hist.counts[bisect_left(ENVOY_BUCKETS, response_bytes)] += 1
        hist.total += response_bytes

    def _http_series(
        self, dest: Destination, key: tuple[str, int, bytes | None, str]
    ) -> HttpSeries:
        protocol, status, grpc_status, flags = key
        grpc_value = grpc_status.decode("ascii", "replace") if grpc_status is not None else ""
        values = (
            *self.source,
            *dest.values,
            protocol,
            str(status),
            grpc_value,
            flags,
            _SECURITY_POLICY,
        )
        series = self.http.get(values)
        if series is None:
            series = self.http[values] = HttpSeries()
        return series

    def tunnel_series(self, dest: Destination) -> TcpSeries:
        series = dest.tcp
        if series is None:
            values = (*self.source, *dest.values, "tcp", "-", _SECURITY_POLICY)
            series = self.tcp.get(values)
            if series is None:
                series = self.tcp[values] = TcpSeries()
            dest.tcp = series
        return series

    def collect(self) -> Iterator[Metric]:
        labels = list(HTTP_LABELS)
        requests = CounterMetricFamily(
            "istio_requests_total", "Requests handled by the gateway (Istio)", labels=labels
        )
        hists = [
            HistogramMetricFamily(
                "istio_request_duration_milliseconds",
                "Request duration in milliseconds (Istio)",
                labels=labels,
            ),
            HistogramMetricFamily(
                "istio_request_bytes", "Request body size in bytes (Istio)", labels=labels
            ),
            HistogramMetricFamily(
                "istio_response_bytes", "Response body size in bytes (Istio)", labels=labels
            ),
        ]
        for values, s in sorted(self.http.items()):
            lv = list(values)
            requests.add_metric(lv, s.count)
            for fam, hist in zip(
                hists, (s.duration, s.request_bytes, s.response_bytes), strict=True
            ):
                fam.add_metric(lv, hist.buckets(), hist.total)
        yield requests
        yield from hists
        tcp_labels = list(TCP_LABELS)
        tunnels = sorted(self.tcp.items())
        for name, doc, get in _TCP_FAMILIES:
            counter = CounterMetricFamily(name, doc, labels=tcp_labels)
            for values, t in tunnels:
                counter.add_metric(list(values), get(t))
            yield counter


_TCP_FAMILIES: tuple[tuple[str, str, Callable[[TcpSeries], int]], ...] = (
    ("istio_tcp_connections_opened_total", "TCP connections opened (Istio)", lambda t: t.opened),
    ("istio_tcp_connections_closed_total", "TCP connections closed (Istio)", lambda t: t.closed),
    ("istio_tcp_sent_bytes_total", "Bytes sent to the client over TCP (Istio)", lambda t: t.sent),
    (
        "istio_tcp_received_bytes_total",
        "Bytes received from the client over TCP (Istio)",
        lambda t: t.received,
    ),
)
