"""Data path: span export over OTLP/HTTP with the OpenTelemetry SDK, off the event loop.

The event loop only appends a ``SpanRecord`` to a bounded deque (``offer``): no lock, no
system call, no SDK object. A full queue drops the span and counts it (the SDK's own
``BatchSpanProcessor`` drops silently, so it is not used). One daemon thread wakes every
``interval`` seconds, or as soon as a batch is full, turns the records into SDK spans (the
SDK's ``Tracer``, with the ids the gateway already sent upstream) and hands them to the
OTLP/HTTP exporter. A slow or stuck collector stalls only that thread; the queue fills and
further spans are dropped and counted, while requests go on at full speed.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from gateway_core.observability.tracing import Tracer

if TYPE_CHECKING:
    from gateway_core.observability.tracing import SpanRecord
    from gateway_core.settings import GatewaySettings

_log = logging.getLogger("gateway.tracing")

MAX_QUEUE = 2048
"""The OpenTelemetry SDK's default ``max_queue_size``."""
MAX_BATCH = 512
"""The SDK's default ``max_export_batch_size``."""
INTERVAL = 5.0
"""Seconds between exports (the SDK's ``schedule_delay`` and Envoy's flush interval)."""


class _PresetIds(IdGenerator):
    """Hands the SDK's tracer the ids the gateway chose (and already sent upstream)."""

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return self.span_id


class _Collect(SpanProcessor):
    """Keeps the spans the SDK's tracer ended, for one export call."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class OtlpSpanSink:
    """A bounded queue of span records and the thread that exports them."""

    def __init__(
        self,
        exporter: SpanExporter,
        resource: Mapping[str, str],
        *,
        max_queue: int = MAX_QUEUE,
        max_batch: int = MAX_BATCH,
        interval: float = INTERVAL,
    ) -> None:
        self.exporter = exporter
        self.max_queue = max(1, max_queue)
        self.max_batch = max(1, min(max_batch, self.max_queue))
        self.interval = interval
        self.queue: deque[SpanRecord] = deque()
        self.dropped = 0
        """Spans dropped because the queue was full (counted on the event loop's thread)."""
        self.exported = 0
        self.failed = 0
        """Spans the collector did not accept (counted on the export thread)."""
        self._wake = threading.Event()
        self._stop = False
        self._ids = _PresetIds()
        self._collect = _Collect()
        provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.create(dict(resource)),
            id_generator=self._ids,
            shutdown_on_exit=False,
        )
        provider.add_span_processor(self._collect)
        self._tracer = provider.get_tracer("multicluster-gateway")
        self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, record: SpanRecord) -> None:
        queue = self.queue
        size = len(queue)
        if size >= self.max_queue:
            self.dropped += 1
            return
        queue.append(record)
        if size + 1 == self.max_batch:
            self._wake.set()  # a full batch goes now, not at the next interval

    def close(self, timeout: float) -> None:
        """Export what is queued (bounded by ``timeout`` seconds) and stop the thread."""
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.exporter.shutdown()

    # -- the export thread ---------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        queue = self.queue
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
            try:
                result = self.exporter.export(self._spans(batch))
            except Exception:  # the exporter's own bug must not end the thread
                _log.exception("span export failed")
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self.exported += len(batch)
            else:
                self.failed += len(batch)

    def _spans(self, batch: Sequence[SpanRecord]) -> list[ReadableSpan]:
        ids, tracer, collect = self._ids, self._tracer, self._collect
        collect.spans = []
        for rec in batch:
            ids.trace_id = int(rec.trace_id, 16)
            ids.span_id = int(rec.span_id, 16)
            context = None
            if rec.parent_id:
                parent = trace_api.SpanContext(
                    ids.trace_id,
                    int(rec.parent_id, 16),
                    is_remote=True,
                    trace_flags=trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED),
                )
                context = trace_api.set_span_in_context(trace_api.NonRecordingSpan(parent))
            span = tracer.start_span(
                rec.name,
                context=context,
                kind=trace_api.SpanKind.CLIENT,
                attributes=rec.attributes,
                start_time=rec.start_ns,
            )
            if rec.error:
                span.set_status(trace_api.Status(trace_api.StatusCode.ERROR))
            span.end(end_time=rec.end_ns)
        return collect.spans


def build_tracing(settings: GatewaySettings, rng: random.Random) -> tuple[Tracer, OtlpSpanSink]:
    """The tracer and its started export thread for ``--tracing-otlp-endpoint``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = {"service.name": f"{settings.tier}-gateway"}
    node = {"node_id": f"router~{settings.cluster_name or '-'}~{settings.tier}-gateway"}
    if settings.cluster_name:
        resource["k8s.cluster.name"] = settings.cluster_name
    if settings.locality.zone:
        node["zone"] = settings.locality.zone
    sink = OtlpSpanSink(
        OTLPSpanExporter(endpoint=settings.tracing_endpoint),
        resource,
        max_queue=settings.tracing_queue_size,
        interval=settings.tracing_flush_interval,
    )
    sink.start()
    return Tracer(settings.tracing_sampling, sink, rng=rng, node=node), sink
