"""Data path: the gateway's tracer: which requests a span is recorded for, and what it says.

One span per request and hop, as Envoy records at its HTTP connection manager: it starts when
the request arrives (``Tracer.start``, from ``Exchange.begin``) and is recorded when the
exchange finishes (``Tracer.finish``, from the runtime's ``observe``). Sampling follows
Envoy/Istio: a caller's sampling decision is kept; without one, the gateway samples
``sampling`` percent of requests. Only sampled spans become records, handed to a bounded
``SpanSink`` (``span_export.py``) that never blocks: a full queue drops the span and counts it.

Kind ``CLIENT``: Istio's gateways are egress listeners, and Envoy gives the single span of
an egress connection manager the ``CLIENT`` kind. Attributes use Envoy's tag names
(``upstream_cluster``, ``upstream_address``, ``response_flags``, ``http.status_code``, ...) plus
``route_name`` (Envoy's ``%ROUTE_NAME%``), which Envoy has no tag for; Envoy's per-process tags
(``node_id``, ``zone``, ``component``) go in the resource, encoded once per export batch.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sized
from typing import TYPE_CHECKING, NamedTuple, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway_core.proxy.trace_context import TraceContext, new_span_id, start

if TYPE_CHECKING:
    from gateway_core.proxy.outcome import ExchangeOutcome


class SpanRecord(NamedTuple):
    """One finished, sampled span, as plain data (the exporter builds the SDK's span)."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    """``b""`` for the root span of a trace the gateway started."""
    name: str
    start_ns: int
    end_ns: int
    """Wall-clock times, nanoseconds since the epoch."""
    attributes: dict[str, str]
    error: bool
    """A 5xx answer: the span's status is ERROR (Envoy's ``error`` tag)."""


class SpanSink(Protocol):
    def offer(self, record: SpanRecord) -> None:
        """Queue ``record`` for export, or drop (and count) it; never blocks."""


class SinkStats(Protocol):
    """The export queue's counters, as the metrics read them."""

    @property
    def dropped(self) -> int: ...
    @property
    def exported(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def queue(self) -> Sized: ...


class Tracer:
    """Starts the gateway's span of each request and records the sampled ones."""

    __slots__ = ("_percent", "_rng", "_sample", "_wall", "sink")

    def __init__(
        self,
        sampling: float,
        sink: SpanSink,
        *,
        rng: random.Random,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        """``sampling``: percent of requests without a caller's decision that are sampled
        (Istio's ``sampling``); ``wall_ns``: the wall clock for span times."""
        self._percent = min(max(sampling, 0.0), 100.0)
        self._rng = rng
        self.sink = sink
        self._wall = wall_ns
        if self._percent >= 100.0:
            self._sample: Callable[[], bool] = _always
        elif self._percent <= 0.0:
            self._sample = _never
        else:
            self._sample = self._draw

    def _draw(self) -> bool:
        return self._rng.random() * 100.0 < self._percent

    def start(self, headers: Mapping[bytes, bytes], request_id: bytes) -> TraceContext:
        """The gateway's span of a request that carried ``headers``."""
        return start(headers, request_id, self._sample, new_span_id)

    def finish(self, ex: ExchangeOutcome, now: float) -> None:
        """Record the span of a finished exchange (``now``: loop time), if it is sampled."""
        trace = ex.trace
        if trace is None or not trace.sampled:
            return
        end_ns = self._wall()
        start_ns = end_ns - round((now - ex.start) * 1e9)
        self.sink.offer(
            SpanRecord(
                trace.trace_id,
                trace.span_id,
                trace.parent_id,
                span_name(ex),
                start_ns,
                end_ns,
                self.attributes(ex),
                ex.status >= 500,
            )
        )

    def attributes(self, ex: ExchangeOutcome) -> dict[str, str]:
        """Envoy's span tags for this exchange, plus ``route_name``. The process's own tags
        (``node_id``, ``zone``, ``component``) are resource attributes, sent once per batch."""
        req = ex.req
        host, target, entry = ex.host, ex.target, ex.entry
        cluster = target.cluster if target is not None else "-"
        attrs = {
            "guid:x-request-id": ex.request_id.decode("latin-1") or "-",
            "http.url": f"{_text(req.scheme)}://{_text(req.authority)}{_text(req.target)}",
            "http.method": _text(req.method),
            "http.status_code": str(ex.status),
            "response_flags": ",".join(f.value for f in ex.flags) or "-",
            "upstream_cluster": cluster,
            "upstream_address": host.label if host is not None else "-",
            "route_name": entry.name if entry is not None else "-",
            "peer.address": req.source_ip or "-",
            "user_agent": _text(req.headers.get(b"user-agent", b"-")),
            "request_size": str(ex.bytes_received),
            "response_size": str(ex.bytes_sent),
        }
        if ex.status >= 500:
            attrs["error"] = "true"
        return attrs


def span_name(ex: ExchangeOutcome) -> str:
    """Istio's operation name ``<destination host>:<port>/*``; a route that answers itself
    is named after the route, and a request with no route after its host."""
    target = ex.target
    if target is not None:
        return f"{target.host}:{target.port}/*" if target.port else f"{target.host}/*"
    if ex.entry is not None:
        return ex.entry.name
    return ex.req.host or "-"


def _text(value: bytes) -> str:
    return value.decode("latin-1")


def _always() -> bool:
    return True


def _never() -> bool:
    return False


class TracingCollector(Collector):
    """``gateway_tracing_*``: spans exported, dropped (queue full) and refused, and the queue."""

    def __init__(self, tier: str, sink: SinkStats | None) -> None:
        self._tier = tier
        self._sink = sink

    def collect(self) -> Iterator[Metric]:
        sink, tier = self._sink, self._tier
        exported = failed = dropped = queued = 0
        if sink is not None:
            exported, failed, dropped = sink.exported, sink.failed, sink.dropped
            queued = len(sink.queue)
        spans = CounterMetricFamily(
            "gateway_tracing_spans",
            "Sampled spans by outcome: exported, or failed (the collector refused the batch)",
            labels=["tier", "outcome"],
        )
        spans.add_metric([tier, "exported"], exported)
        spans.add_metric([tier, "failed"], failed)
        yield spans
        drops = CounterMetricFamily(
            "gateway_tracing_spans_dropped",
            "Sampled spans dropped because the export queue was full",
            labels=["tier"],
        )
        drops.add_metric([tier], dropped)
        yield drops
        queue = GaugeMetricFamily(
            "gateway_tracing_queue_spans", "Spans waiting for export", labels=["tier"]
        )
        queue.add_metric([tier], queued)
        yield queue
