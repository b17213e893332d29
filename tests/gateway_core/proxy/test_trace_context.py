"""Tests for gateway_core/proxy/trace_context.py: W3C and B3 headers read, the gateway's span,
and the fields the next hop gets."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from gateway_core.proxy.messages import request_fields, request_head
from gateway_core.proxy.trace_context import (
    TraceContext,
    extract,
    new_span_id,
    parse_b3,
    parse_b3_multi,
    parse_traceparent,
    start,
    trace_id_of,
)
from gateway_core.routing.actions import HeaderOps, RouteAction, WeightedCluster
from gateway_core.routing.request import RequestHead, join_headers
from gateway_core.routing.route_table import RouteEntry

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"
GATEWAY_SPAN = b"b7ad6b7169203331"
RID = b"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"


def ctx(headers: dict[bytes, bytes], *, sample: bool = False) -> TraceContext:
    return start(headers, RID, lambda: sample, lambda: GATEWAY_SPAN)


def fields(trace: TraceContext, raw: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in trace.upstream(raw):
        out.setdefault(name, []).append(value)
    return out


def test_traceparent_parsed() -> None:
    """Version 00: trace id, parent id and the sampled bit (bit 0 of the flags)."""
    assert parse_traceparent(b"00-" + TRACE + b"-" + PARENT + b"-01") == (TRACE, PARENT, True)
    assert parse_traceparent(b"00-" + TRACE + b"-" + PARENT + b"-00") == (TRACE, PARENT, False)
    assert parse_traceparent(b"00-" + TRACE + b"-" + PARENT + b"-03") == (TRACE, PARENT, True)
    # A later version may carry more after the flags; only the first four parts are read.
    future = b"cc-" + TRACE + b"-" + PARENT + b"-01-what-comes-next"
    assert parse_traceparent(future) == (TRACE, PARENT, True)


@pytest.mark.parametrize(
    "value",
    [
        b"ff-" + TRACE + b"-" + PARENT + b"-01",  # version ff is invalid
        b"00-" + b"0" * 32 + b"-" + PARENT + b"-01",  # all-zero trace id
        b"00-" + TRACE + b"-" + b"0" * 16 + b"-01",  # all-zero parent id
        b"00-" + TRACE.upper() + b"-" + PARENT + b"-01",  # upper-case hex
        b"00-" + TRACE[:-1] + b"-" + PARENT + b"-01",  # short trace id
        b"00-" + TRACE + b"-" + PARENT + b"-01-extra",  # version 00 has nothing after flags
        b"00-" + TRACE + b"-" + PARENT + b"-1",  # one flag digit
        b"0-" + TRACE + b"-" + PARENT + b"-01",
        b"00-" + TRACE + b"-" + PARENT + b"-01,00-" + TRACE + b"-" + PARENT + b"-01",  # repeated
        b"not a traceparent",
        b"",
    ],
)
def test_malformed_traceparent_is_invalid(value: bytes) -> None:
    assert parse_traceparent(value) is None


def test_b3_single_forms() -> None:
    """``trace-span[-sampling[-parent]]``, or a lone sampling state; ``d`` is sampled; a 64-bit
    trace id is valid."""
    assert parse_b3(TRACE + b"-" + PARENT) == (TRACE, PARENT, None)
    assert parse_b3(TRACE + b"-" + PARENT + b"-1") == (TRACE, PARENT, True)
    assert parse_b3(TRACE + b"-" + PARENT + b"-0-" + GATEWAY_SPAN) == (TRACE, PARENT, False)
    assert parse_b3(TRACE[16:] + b"-" + PARENT + b"-d") == (TRACE[16:], PARENT, True)
    assert parse_b3(b"0") == (b"", b"", False)
    assert parse_b3(b"d") == (b"", b"", True)
    for bad in (b"1-2", TRACE + b"-" + b"0" * 16, b"0" * 32 + b"-" + PARENT, TRACE + b"-x-1"):
        assert parse_b3(bad) is None


def test_b3_multi_forms() -> None:
    full = {b"x-b3-traceid": TRACE, b"x-b3-spanid": PARENT, b"x-b3-sampled": b"1"}
    assert parse_b3_multi(full) == (TRACE, PARENT, True)
    assert parse_b3_multi({**full, b"x-b3-sampled": b"false"}) == (TRACE, PARENT, False)
    assert parse_b3_multi({**full, b"x-b3-sampled": b"0", b"x-b3-flags": b"1"})[2] is True  # type: ignore[index]
    assert parse_b3_multi({b"x-b3-sampled": b"0"}) == (b"", b"", False)
    assert parse_b3_multi({b"x-b3-traceid": TRACE}) is None  # no span id
    assert parse_b3_multi({**full, b"x-b3-spanid": b"zz"}) is None


def test_precedence_w3c_then_b3_single_then_multi() -> None:
    tp = b"00-" + TRACE + b"-" + PARENT + b"-01"
    other = b"1" * 32
    single = other + b"-" + GATEWAY_SPAN + b"-0"
    multi = {b"x-b3-traceid": b"2" * 32, b"x-b3-spanid": b"3" * 16, b"x-b3-sampled": b"1"}
    got = extract({b"traceparent": tp, b"b3": single, **multi})
    assert got is not None and (got.trace_id, got.w3c) == (TRACE, True)
    got = extract({b"b3": single, **multi})
    assert got is not None and (got.trace_id, got.sampled, got.w3c) == (other, False, False)
    got = extract(multi)
    assert got is not None and got.trace_id == b"2" * 32
    # An invalid traceparent falls back to B3.
    got = extract({b"traceparent": b"ff" + tp[2:], b"b3": single})
    assert got is not None and got.trace_id == other
    assert extract({b"host": b"x"}) is None


def test_no_context_starts_a_trace_named_after_the_request_id() -> None:
    """The trace id is the request id's 32 hex digits; only traceparent goes upstream."""
    calls = itertools.count()
    trace = start({}, RID, lambda: next(calls) == 0, lambda: GATEWAY_SPAN)
    assert trace.trace_id == RID.replace(b"-", b"")
    assert (trace.span_id, trace.parent_id, trace.sampled) == (GATEWAY_SPAN, b"", True)
    got = fields(trace, [(b"accept", b"*/*")])
    assert got == {
        b"accept": [b"*/*"],
        b"traceparent": [b"00-" + trace.trace_id + b"-" + GATEWAY_SPAN + b"-01"],
    }
    # A request id that is not a UUID: a random trace id.
    other = start({}, b"my-request", lambda: False, new_span_id)
    assert len(other.trace_id) == 32 and other.trace_id != b"0" * 32
    assert fields(other, [])[b"traceparent"][0].endswith(b"-00")


def test_incoming_w3c_context_is_continued() -> None:
    """Same trace, the caller's span as parent, its sampling decision kept (sample() is not
    asked), tracestate passed on, and the old traceparent replaced."""
    asked: list[bool] = []

    def sample() -> bool:
        asked.append(True)
        return True

    raw = [
        (b"traceparent", b"00-" + TRACE + b"-" + PARENT + b"-00"),
        (b"tracestate", b"vendor=1"),
    ]
    trace = start(join_headers(raw), RID, sample, lambda: GATEWAY_SPAN)
    assert (trace.trace_id, trace.parent_id, trace.sampled) == (TRACE, PARENT, False)
    assert not asked
    assert fields(trace, raw) == {
        b"tracestate": [b"vendor=1"],
        b"traceparent": [b"00-" + TRACE + b"-" + GATEWAY_SPAN + b"-00"],
    }


def test_malformed_traceparent_starts_a_new_trace() -> None:
    """Never an error: a new trace, the bad field and its tracestate replaced/dropped."""
    raw = [(b"traceparent", b"00-garbage"), (b"tracestate", b"vendor=1")]
    trace = start(join_headers(raw), RID, lambda: True, lambda: GATEWAY_SPAN)
    assert trace.parent_id == b"" and trace.trace_id == RID.replace(b"-", b"")
    assert fields(trace, raw) == {
        b"traceparent": [b"00-" + trace.trace_id + b"-" + GATEWAY_SPAN + b"-01"]
    }


def test_b3_multi_rewritten_for_the_next_hop() -> None:
    """The next hop sees the gateway's span as x-b3-spanid and the caller's as its parent;
    a caller without a sampling decision gets the gateway's."""
    raw = [(b"x-b3-traceid", TRACE), (b"x-b3-spanid", PARENT), (b"x-b3-parentspanid", b"9" * 16)]
    trace = ctx(join_headers(raw), sample=True)
    assert trace.sampled
    assert fields(trace, raw) == {
        b"traceparent": [b"00-" + TRACE + b"-" + GATEWAY_SPAN + b"-01"],
        b"x-b3-traceid": [TRACE],
        b"x-b3-spanid": [GATEWAY_SPAN],
        b"x-b3-parentspanid": [PARENT],
        b"x-b3-sampled": [b"1"],
    }


def test_b3_single_rewritten_keeping_a_64_bit_trace_id() -> None:
    raw = [(b"b3", TRACE[16:] + b"-" + PARENT + b"-1")]
    trace = ctx(join_headers(raw))
    assert trace.trace_id == b"0" * 16 + TRACE[16:]
    assert fields(trace, raw) == {
        b"traceparent": [b"00-" + trace.trace_id + b"-" + GATEWAY_SPAN + b"-01"],
        b"b3": [TRACE[16:] + b"-" + GATEWAY_SPAN + b"-1-" + PARENT],
    }


def test_lone_sampling_decision_is_kept_on_a_new_trace() -> None:
    trace = ctx({b"b3": b"0"}, sample=True)
    assert not trace.sampled and trace.parent_id == b""
    assert fields(trace, [(b"b3", b"0")])[b"b3"] == [trace.trace_id + b"-" + GATEWAY_SPAN + b"-0"]


def test_trace_id_of_request_ids() -> None:
    assert trace_id_of(RID) == RID.replace(b"-", b"")
    assert trace_id_of(RID.upper()) == RID.replace(b"-", b"")
    assert trace_id_of(b"not-a-uuid") == b""
    assert trace_id_of(b"00000000-0000-0000-0000-000000000000") == b""


def test_span_ids_are_random_hex() -> None:
    ids = {new_span_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 16 and int(i, 16) > 0 for i in ids)


def test_upstream_head_carries_the_gateway_span_once() -> None:
    """request_head: with or without header operations, the next hop gets exactly one
    traceparent, the gateway's, even when an operation tried to set one."""
    raw = [(b"host", b"a"), (b"traceparent", b"00-" + TRACE + b"-" + PARENT + b"-01")]
    req = RequestHead(b"GET", b"/", b"", b"a", b"http", 80, raw, "10.0.0.1")
    trace = ctx(req.headers)
    target = WeightedCluster("c", 100, "svc")
    ops = HeaderOps(set=((b"traceparent", b"00-x"),), add=((b"x-added", b"1"),))
    for route_ops in (None, ops):
        route = RouteEntry(
            "ns/vs/http[0]", "ns/vs", 0, (), RouteAction.build((target,)), request_headers=route_ops
        )
        head = request_head(
            req, route, None, None, authority=b"up", client_ip=b"10.0.0.1",
            trust_forwarded=False, request_id=RID, framing="none", upgrade=False, trace=trace,
        )  # fmt: skip
        lines = head.split(b"\r\n")
        assert [ln for ln in lines if ln.startswith(b"traceparent")] == [
            b"traceparent: 00-" + TRACE + b"-" + GATEWAY_SPAN + b"-01"
        ]


def test_http2_upstream_fields_carry_the_gateway_span() -> None:
    """request_fields (an HTTP/2 upstream) replaces the trace fields like the HTTP/1.1 head."""
    raw = [(b"host", b"a"), (b"b3", TRACE + b"-" + PARENT + b"-1"), (b"te", b"trailers")]
    req = RequestHead(b"POST", b"/svc.S/M", b"", b"a", b"http", 80, raw, "10.0.0.1")
    trace = ctx(req.headers)
    target = WeightedCluster("c", 100, "svc")
    route = RouteEntry("ns/vs/http[0]", "ns/vs", 0, (), RouteAction.build((target,)))
    down = SimpleNamespace(client_ip_bytes=b"10.0.0.1", trust_forwarded=False)
    ex = SimpleNamespace(
        req=req, entry=route, down=down, authority=b"up", request_id=RID, target=None,
        match=None, trace=trace, hops=b"",
    )  # fmt: skip
    _, _, _, got = request_fields(ex)  # type: ignore[arg-type]
    assert [v for n, v in got if n == b"traceparent"] == [
        b"00-" + TRACE + b"-" + GATEWAY_SPAN + b"-01"
    ]
    assert [v for n, v in got if n == b"b3"] == [TRACE + b"-" + GATEWAY_SPAN + b"-1-" + PARENT]
