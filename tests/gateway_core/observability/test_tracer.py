"""Tests for gateway_core/observability/tracing.py and span_export.py: sampling, the span each
request records, the bounded export queue, its thread and its metrics, and the CLI flags."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry, generate_latest

import tier1_gateway.cli
from gateway_core.cli import _parser, _settings
from gateway_core.observability.span_export import OtlpSpanSink
from gateway_core.observability.tracing import SpanRecord, Tracer, TracingCollector
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.routing.actions import WeightedCluster
from gateway_core.routing.request import RequestHead

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
RID = b"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


class Recorder:
    def __init__(self) -> None:
        self.records: list[SpanRecord] = []

    def offer(self, record: SpanRecord) -> None:
        self.records.append(record)


def exchange(headers: list[tuple[bytes, bytes]], **fields: Any) -> SimpleNamespace:
    raw = [(b"host", b"shop.example"), *headers]
    req = RequestHead(b"GET", b"/cart", b"x=1", b"shop.example", b"https", 443, raw, "10.1.2.3")
    base: dict[str, Any] = {
        "req": req, "start": 10.0, "status": 200, "flags": (), "host": None, "target": None,
        "entry": None, "bytes_received": 5, "bytes_sent": 7, "request_id": RID, "trace": None,
    }  # fmt: skip
    base.update(fields)
    return SimpleNamespace(**base)


def test_sampling_percent_draws_from_the_injected_rng() -> None:
    tracer = Tracer(25.0, Recorder(), rng=random.Random(7))
    decisions = [tracer.start({}, RID).sampled for _ in range(4000)]
    assert 900 < sum(decisions) < 1100  # 25 % of 4000, within 5 sigma
    assert not Tracer(0.0, Recorder(), rng=random.Random(1)).start({}, RID).sampled
    assert Tracer(100.0, Recorder(), rng=random.Random(1)).start({}, RID).sampled


def test_finish_records_sampled_spans_with_envoy_attributes() -> None:
    sink = Recorder()
    tracer = Tracer(0.0, sink, rng=random.Random(1), wall_ns=lambda: 5_000)
    traceparent = (b"traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())
    host = SimpleNamespace(label="127.0.0.1:9000")
    target = WeightedCluster("outbound|80||cart.local", 100, "cart.local", port=80)
    entry = SimpleNamespace(name="default/vs/http[0].cart")
    ex = exchange(
        [traceparent, (b"user-agent", b"curl/8")],
        status=503, flags=(ResponseFlag.UPSTREAM_CONNECT_FAILURE,), host=host,
        target=target, entry=entry,
    )  # fmt: skip
    ex.trace = tracer.start(ex.req.headers, RID)
    tracer.finish(ex, 10.000002)  # 2 µs after the start, in loop time
    (rec,) = sink.records
    assert rec.trace_id.decode() == TRACE and rec.parent_id == b"00f067aa0ba902b7"
    assert rec.span_id == ex.trace.span_id
    assert (rec.start_ns, rec.end_ns, rec.error) == (3_000, 5_000, True)
    assert rec.name == "cart.local:80/*"
    assert rec.attributes == {
        "guid:x-request-id": RID.decode(),
        "http.url": "https://shop.example/cart?x=1",
        "http.method": "GET",
        "http.status_code": "503",
        "response_flags": "UF",
        "upstream_cluster": "outbound|80||cart.local",
        "upstream_address": "127.0.0.1:9000",
        "route_name": "default/vs/http[0].cart",
        "peer.address": "10.1.2.3",
        "user_agent": "curl/8",
        "request_size": "5",
        "response_size": "7",
        "error": "true",
    }
    # Unsampled, or no trace at all: nothing is recorded.
    quiet = exchange([])
    quiet.trace = tracer.start(quiet.req.headers, RID)
    tracer.finish(quiet, 11.0)
    tracer.finish(exchange([]), 11.0)
    assert len(sink.records) == 1


class Exporter(SpanExporter):
    """Records batches; ``gate`` (when set) holds each export until it is released."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        self.batches: list[list[ReadableSpan]] = []
        self.result = result
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(spans))
        return self.result

    def shutdown(self) -> None:
        self.shut = True


def record(i: int, parent: str = "") -> SpanRecord:
    return SpanRecord(
        TRACE.encode(), b"%016x" % (i + 1), parent.encode(), f"s{i}", 1_000, 2_000,
        {"k": "v"}, i % 2 == 1,
    )  # fmt: skip


def wait(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_export_thread_sends_sdk_spans_with_the_gateways_ids() -> None:
    exporter = Exporter()
    sink = OtlpSpanSink(exporter, {"service.name": "tier1-gateway"}, interval=0.02)
    sink.offer(record(0))
    sink.offer(record(1, parent="00f067aa0ba902b7"))
    wait(lambda: sink.exported == 2)
    spans = [s for batch in exporter.batches for s in batch]
    root, child = spans
    assert root.context is not None and child.context is not None
    assert f"{root.context.trace_id:032x}" == TRACE and root.context.span_id == 1
    assert root.parent is None
    assert child.parent is not None and child.parent.span_id == 0x00F067AA0BA902B7
    assert child.parent.trace_id == child.context.trace_id and child.parent.is_remote
    assert root.kind == child.kind == SpanKind.CLIENT
    assert (root.start_time, root.end_time) == (1_000, 2_000)
    assert root.status.status_code == StatusCode.UNSET
    assert child.status.status_code == StatusCode.ERROR
    assert root.resource.attributes["service.name"] == "tier1-gateway"
    assert dict(root.attributes or {}) == {"k": "v"}
    sink.close(5.0)
    assert exporter.shut


def test_full_queue_drops_and_counts_and_never_waits() -> None:
    exporter = Exporter()
    exporter.gate = threading.Event()
    sink = OtlpSpanSink(exporter, {}, max_queue=3, max_batch=3, interval=0.01)
    sink.offer(record(0))
    assert exporter.entered.wait(5)  # the thread holds one span, stuck in export
    began = time.monotonic()
    for i in range(1, 11):
        sink.offer(record(i))
    assert time.monotonic() - began < 0.5
    assert (len(sink.queue), sink.dropped) == (3, 7)
    exporter.gate.set()
    wait(lambda: sink.exported == 4)
    sink.close(5.0)


def test_refused_batches_are_counted_as_failed() -> None:
    sink = OtlpSpanSink(Exporter(SpanExportResult.FAILURE), {}, interval=0.01)
    sink.offer(record(0))
    wait(lambda: sink.failed == 1)
    sink.close(5.0)
    assert sink.exported == 0


def test_close_exports_what_is_queued() -> None:
    exporter = Exporter()
    sink = OtlpSpanSink(exporter, {}, interval=60.0)
    for i in range(3):
        sink.offer(record(i))
    sink.close(5.0)
    assert sink.exported == 3 and len(exporter.batches[0]) == 3


def test_metrics_families() -> None:
    sink = OtlpSpanSink(Exporter(), {}, max_queue=1, interval=60.0)
    sink.offer(record(0))
    sink.offer(record(1))
    registry = CollectorRegistry()
    registry.register(TracingCollector("tier2", sink))
    text = generate_latest(registry).decode()
    assert 'gateway_tracing_spans_dropped_total{tier="tier2"} 1.0' in text
    assert 'gateway_tracing_queue_spans{tier="tier2"} 1.0' in text
    assert 'gateway_tracing_spans_total{outcome="exported",tier="tier2"} 0.0' in text
    sink.close(5.0)
    off = CollectorRegistry()
    off.register(TracingCollector("tier1", None))
    assert 'gateway_tracing_spans_dropped_total{tier="tier1"} 0.0' in generate_latest(off).decode()


def test_cli_flags() -> None:
    parser = _parser(tier1_gateway.cli.ROLE)
    args = parser.parse_args(
        ["run", "--config", "x.yaml", "--tracing-otlp-endpoint", "http://c:4318/v1/traces",
         "--tracing-sampling", "2.5", "--tracing-queue-size", "64",
         "--tracing-flush-interval", "0.5"]
    )  # fmt: skip
    settings = _settings(args, tier1_gateway.cli.ROLE)
    assert settings.tracing_endpoint == "http://c:4318/v1/traces"
    assert (settings.tracing_sampling, settings.tracing_queue_size) == (2.5, 64)
    assert settings.tracing_flush_interval == 0.5
    default = _settings(parser.parse_args(["run", "--config", "x.yaml"]), tier1_gateway.cli.ROLE)
    assert (default.tracing_endpoint, default.tracing_sampling) == ("", 1.0)
    for bad in ("101", "-1", "many"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--config", "x.yaml", "--tracing-sampling", bad])
