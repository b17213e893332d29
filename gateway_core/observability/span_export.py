"""Data path: span export over OTLP/HTTP with the OpenTelemetry SDK, off the event loop.

The event loop only appends a ``SpanRecord`` to a bounded deque (``offer``): no lock, no
system call, no SDK object. A full queue drops the span and counts it (the SDK's own
``BatchSpanProcessor`` drops silently, so it is not used). One daemon thread (started by the
first span) wakes every ``interval`` seconds, or as soon as a batch is full, turns the records
into the SDK's finished spans (``ReadableSpan``, with the ids the gateway already sent
upstream) and hands them to the SDK's OTLP/HTTP exporter. A slow or stuck collector stalls
only that thread; the queue fills and further spans are dropped and counted, while requests go
on at full speed.
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
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

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


_SAMPLED = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED)
_ERROR = trace_api.Status(trace_api.StatusCode.ERROR)
_UNSET = trace_api.Status(trace_api.StatusCode.UNSET)


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
        self._resource = Resource.create(dict(resource))
        self._scope = InstrumentationScope("multicluster-gateway")
        self._thread: threading.Thread | None = None

    def offer(self, record: SpanRecord) -> None:
        queue = self.queue
        size = len(queue)
        if size >= self.max_queue:
            self.dropped += 1
            return
        queue.append(record)
        if self._thread is None:
            # Started by the first span, in the process that serves (after any fork).
            self._thread = threading.Thread(target=self._run, name="span-export", daemon=True)
            self._thread.start()
        elif size + 1 == self.max_batch:
            self._wake.set()  # a full batch goes now, not at the next interval

    def close(self, timeout: float) -> None:
        """Export what is queued (bounded by ``timeout`` seconds) and stop the thread."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        if thread is None or not thread.is_alive():
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
        """The SDK's spans for ``batch``, built as finished spans straight away: the ids
        are the gateway's (already sent upstream), so the SDK's tracer, which makes its own,
        is not used; it would also cost more than ten times as much per span."""
        resource, scope = self._resource, self._scope
        spans = []
        for rec in batch:
            trace_id = int(rec.trace_id, 16)
            parent = None
            if rec.parent_id:
                parent = trace_api.SpanContext(trace_id, int(rec.parent_id, 16), True, _SAMPLED)
            spans.append(
                ReadableSpan(
                    rec.name,
                    trace_api.SpanContext(trace_id, int(rec.span_id, 16), False, _SAMPLED),
                    parent,
                    resource,
                    rec.attributes,
                    kind=trace_api.SpanKind.CLIENT,
                    status=_ERROR if rec.error else _UNSET,
                    start_time=rec.start_ns,
                    end_time=rec.end_ns,
                    instrumentation_scope=scope,
                )
            )
        return spans


def build_tracing(settings: GatewaySettings, rng: random.Random) -> tuple[Tracer, OtlpSpanSink]:
    """The tracer and its export queue for ``--tracing-otlp-endpoint``."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = {
        "service.name": f"{settings.tier}-gateway",
        "node_id": f"router~{settings.cluster_name or '-'}~{settings.tier}-gateway",
        "component": "proxy",
    }
    if settings.cluster_name:
        resource["k8s.cluster.name"] = settings.cluster_name
    if settings.locality.zone:
        resource["zone"] = settings.locality.zone
    sink = OtlpSpanSink(
        OTLPSpanExporter(endpoint=settings.tracing_endpoint),
        resource,
        max_queue=settings.tracing_queue_size,
        interval=settings.tracing_flush_interval,
    )
    return Tracer(settings.tracing_sampling, sink, rng=rng), sink
