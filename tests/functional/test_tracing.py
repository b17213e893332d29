"""Functional: tracing through a real Tier-1 and Tier-2, exported over OTLP/HTTP to a receiver.

One request from a traced client gives one trace: client span -> Tier-1 span -> Tier-2 span,
and the pod sees the Tier-2 span as its parent. Sampling 0 exports nothing but still
propagates an unsampled context; a stuck collector slows no request, and the spans it cannot
take are dropped and counted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.otlp import OtlpReceiver, ReceivedSpan
from tests.functional.support import CaptureUpstream, config, get, metric_samples

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SPAN_KIND_CLIENT = 3  # opentelemetry.proto.trace.v1.Span.SpanKind
STATUS_ERROR = 2
QUEUED = ("gateway_tracing_queue_spans", ())


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    rec = await OtlpReceiver().start()
    yield rec
    await rec.close()


@pytest.fixture
async def pod() -> AsyncIterator[CaptureUpstream]:
    up = await CaptureUpstream().start()
    yield up
    await up.close()


async def two_tiers(
    gateway: Callable[..., Any], pod: CaptureUpstream, **tracing: object
) -> tuple[int, int, Any, Any]:
    """A Tier-2 in front of ``pod`` and a Tier-1 in front of it (plus ``/dead``, a route to
    a closed port), both with ``tracing`` settings: (Tier-1 port, Tier-2 port, Tier-1,
    Tier-2)."""
    t1_port, t2_port = free_port(), free_port()
    tier2 = await gateway(
        config(
            t2_port,
            "  - name: to-pod\n    route: [{destination: {host: pod.local}}]",
            {"pod.local": [pod.port]},
        ),
        tier="tier2",
        xff_trusted_hops=1,
        **tracing,
    )
    rules = """  - name: dead
    match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: dead.local}}]
  - name: to-tier2
    route: [{destination: {host: tier2.local}}]"""
    tier1 = await gateway(
        config(t1_port, rules, {"tier2.local": [t2_port], "dead.local": [free_port()]}),
        tier="tier1",
        **tracing,
    )
    return t1_port, t2_port, tier1, tier2


def by_service(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.resource["service.name"]: s for s in spans}


async def test_one_trace_across_both_tiers(
    gateway: Callable[..., Any], pod: CaptureUpstream, receiver: OtlpReceiver
) -> None:
    """The client's sampled context is respected (sampling is 0): each tier adds one span, a
    child of the hop before it, and the pod's traceparent names the Tier-2 span."""
    tracing = {"tracing_endpoint": receiver.url, "tracing_sampling": 0.0}
    port, t2_port, _, _ = await two_tiers(gateway, pod, **tracing, tracing_flush_interval=0.05)
    traceparent = f"00-{TRACE}-{CLIENT_SPAN}-01"
    resp = await get(port, "/hello", host="shop.example", headers={"traceparent": traceparent})
    assert resp.status == 200
    spans = by_service(await receiver.wait_for(2))
    t1, t2 = spans["tier1-gateway"], spans["tier2-gateway"]
    assert t1.trace_id == t2.trace_id == TRACE
    assert t1.parent_id == CLIENT_SPAN
    assert t2.parent_id == t1.span_id != t2.span_id
    seen = pod.requests[0]
    assert seen.header(b"traceparent") == f"00-{TRACE}-{t2.span_id}-01".encode()
    assert t1.kind == t2.kind == SPAN_KIND_CLIENT
    # Envoy's tags, plus the route's name.
    assert t1.attributes["route_name"].endswith("http[1].to-tier2")
    assert t2.attributes["route_name"].endswith("http[0].to-pod")
    assert t1.attributes["upstream_cluster"].endswith("|tier2.local")
    assert t2.attributes["upstream_cluster"].endswith("|pod.local")
    assert t1.attributes["upstream_address"] == f"127.0.0.1:{t2_port}"
    assert t2.attributes["upstream_address"] == f"127.0.0.1:{pod.port}"
    for span in (t1, t2):
        assert span.attributes["response_flags"] == "-"
        assert span.attributes["http.status_code"] == "200"
        assert span.attributes["http.method"] == "GET"
        assert span.attributes["http.url"] == "http://shop.example/hello"
        # The request id Tier-1 made up travels with the trace.
        assert span.attributes["guid:x-request-id"] == seen.header(b"x-request-id").decode()  # type: ignore[union-attr]
    assert t1.name == "tier2.local:80/*" and t2.name == "pod.local:80/*"


async def test_response_flags_and_error_status_on_the_span(
    gateway: Callable[..., Any], pod: CaptureUpstream, receiver: OtlpReceiver
) -> None:
    """A request Tier-1 cannot forward: its span says which route and cluster, the flags,
    and an error status; the gateway started the trace (root span, sampled at 100 %)."""
    port, _, _, _ = await two_tiers(
        gateway, pod, tracing_endpoint=receiver.url, tracing_sampling=100.0,
        tracing_flush_interval=0.05,
    )  # fmt: skip
    resp = await get(port, "/dead/x", host="shop.example")
    assert resp.status == 503
    (span,) = await receiver.wait_for(1)
    assert span.resource["service.name"] == "tier1-gateway"
    assert span.parent_id == ""
    assert span.attributes["route_name"].endswith("http[0].dead")
    assert span.attributes["upstream_cluster"].endswith("|dead.local")
    assert "UF" in span.attributes["response_flags"].split(",")
    assert span.attributes["http.status_code"] == "503"
    assert span.status_code == STATUS_ERROR
    assert span.attributes["upstream_address"].startswith("127.0.0.1:")


async def test_sampling_zero_exports_nothing_but_propagates(
    gateway: Callable[..., Any], pod: CaptureUpstream, receiver: OtlpReceiver
) -> None:
    """No incoming context and sampling 0: the trace starts unsampled (flags 00), named after
    the request id, and reaches the pod through both tiers; no span is exported. A sampled
    request sent afterwards is the marker: once its spans arrived, the first one's would have."""
    port, _, _, _ = await two_tiers(
        gateway, pod, tracing_endpoint=receiver.url, tracing_sampling=0.0,
        tracing_flush_interval=0.05,
    )  # fmt: skip
    assert (await get(port, "/quiet", host="shop.example")).status == 200
    seen = pod.requests[0]
    request_id = seen.header(b"x-request-id")
    assert request_id is not None
    traceparent = seen.header(b"traceparent")
    assert traceparent is not None
    version, trace_id, _, flags = traceparent.split(b"-")
    assert (version, flags) == (b"00", b"00")
    assert trace_id == request_id.replace(b"-", b"")
    marker = {"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"}
    assert (await get(port, "/marker", host="shop.example", headers=marker)).status == 200
    spans = await receiver.wait_for(2)
    assert len(spans) == 2 and {s.trace_id for s in spans} == {TRACE}


async def test_stuck_collector_slows_no_request_and_drops_are_counted(
    gateway: Callable[..., Any], pod: CaptureUpstream, receiver: OtlpReceiver
) -> None:
    """The collector takes a batch and never answers: the export thread is stuck in it, the
    queue (4 spans) fills, and every later span is dropped and counted, while requests keep
    their usual speed."""
    receiver.hold()
    port, _, tier1, tier2 = await two_tiers(
        gateway, pod, tracing_endpoint=receiver.url, tracing_sampling=100.0,
        tracing_queue_size=4, tracing_flush_interval=0.05,
    )  # fmt: skip
    # Two requests: two spans per tier, taken by the export thread at its next interval; the
    # collector holds both tiers' export calls.
    for _ in range(2):
        assert (await get(port, "/warm", host="shop.example")).status == 200
    await receiver.wait_requests(2)
    # (A slow machine may have exported the first span alone: the second then still waits.)
    waiting = {h: (await metric_samples(h.admin))[QUEUED] for h in (tier1, tier2)}
    slowest = 0.0
    for _ in range(30):
        began = time.monotonic()
        assert (await get(port, "/load", host="shop.example")).status == 200
        slowest = max(slowest, time.monotonic() - began)
    assert slowest < 1.0, f"a request took {slowest:.3f} s while the collector was stuck"
    for harness in (tier1, tier2):
        samples = await metric_samples(harness.admin)
        # The queue (4 spans) is full; every other span of the 30 requests was dropped.
        assert samples[QUEUED] == 4
        assert samples[("gateway_tracing_spans_dropped_total", ())] == 30 - (4 - waiting[harness])
        assert samples[("gateway_tracing_spans_total", (("outcome", "exported"),))] == 0
    receiver.release()


async def test_without_a_tracer_trace_fields_pass_through_untouched(
    gateway: Callable[..., Any], pod: CaptureUpstream
) -> None:
    """No --tracing-otlp-endpoint: no span, no new field; what the client sent goes on as it
    was (Envoy without a tracer)."""
    port, _, _, _ = await two_tiers(gateway, pod)
    sent = {"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01", "x-b3-sampled": "1"}
    assert (await get(port, "/plain", host="shop.example", headers=sent)).status == 200
    seen = pod.requests[0]
    assert seen.all(b"traceparent") == [sent["traceparent"].encode()]
    assert seen.all(b"x-b3-sampled") == [b"1"]
    assert seen.header(b"x-b3-spanid") is None and seen.header(b"b3") is None
