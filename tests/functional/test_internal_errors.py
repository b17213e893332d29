"""Functional: a bug in the gateway's own code is the gateway's fault (issue 9, defect 2).

A fault is injected into the request path of an in-process gateway (a method of its cluster
object, which the request path calls, raises: that seam exists whether the request path runs
compiled or as Python).
The client gets 500 (or, once the response started, a cut connection); the error is logged with
its traceback and counted as ``gateway_internal_errors_total``; it is never blamed on the client
(no 400, no protocol-error metric) nor on the upstream host (no retry, no 5xx, no ejection).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway_core.proxy.upstream_request import UpstreamRequest
from gateway_core.upstream.cluster import Cluster
from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    capture_upstream,
    config,
    connect,
    is_closed,
    metric_samples,
    read_response,
    send_raw,
)
from tests.helpers import GatewayHarness, needs_python_sources

RULES = """\
  - route: [{destination: {host: up.svc}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,gateway-error,connect-failure"}
"""
OUTLIER = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 1
      consecutiveGatewayErrors: 1
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100
"""


class Injected(RuntimeError):
    """The fault the tests plant in the gateway's code."""


async def assert_blamed_on_gateway(
    harness: GatewayHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Counted once as an internal error, logged with the injected exception's traceback, and
    charged to neither the client nor the upstream host."""
    metrics = await metric_samples(harness.admin)
    assert metrics[("gateway_internal_errors_total", ())] == 1
    cluster = (("cluster", "outbound|80||up.svc"),)
    assert metrics[("gateway_upstream_rq_retry_total", cluster)] == 0
    assert metrics[("gateway_upstream_rq_total", (*cluster, ("code_class", "5xx")))] == 0
    assert metrics[("gateway_outlier_ejections_total", cluster)] == 0
    assert metrics[("gateway_upstream_rq_active", cluster)] == 0
    assert not [k for k in metrics if k[0] == "gateway_downstream_protocol_errors_total"]
    flags = {dict(k[1]).get("flag") for k in metrics if k[0] == "gateway_response_flags_total"}
    assert not flags & {"DPE", "UPE", "UC", "URX"}
    records = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Injected)]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "Traceback" in caplog.text and "Injected: planted" in caplog.text


async def start(gateway: Callable[..., Any], upstream_port: int) -> tuple[int, GatewayHarness]:
    port = free_port()
    harness = await gateway(config(port, RULES, {"up.svc": [upstream_port]}, extra=OUTLIER))
    return port, harness


async def test_fault_in_request_path_is_500_not_400(
    gateway: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while routing a request (its connection pool cannot be looked up) answers 500 and
    closes; nothing reaches the upstream; the request's circuit-breaker slot is given back."""

    def planted(*args: object, **kwargs: object) -> None:
        raise Injected("planted")

    async with capture_upstream() as up:
        port, harness = await start(gateway, up.port)
        monkeypatch.setattr(Cluster, "pool_for", planted)
        (resp,), closed = await send_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert resp.status == 500
        assert closed
        assert up.requests == []
        await assert_blamed_on_gateway(harness, caplog)


async def test_fault_in_response_path_is_500_and_host_not_charged(
    gateway: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while relaying a (valid) upstream response head answers 500: not 502, not
    retried, not an upstream reset, no ejection; the host keeps serving afterwards."""

    def planted(*args: object, **kwargs: object) -> bytes:
        raise Injected("planted")

    async with capture_upstream() as up:
        port, harness = await start(gateway, up.port)
        with monkeypatch.context() as patch:
            patch.setattr(Cluster, "record_status", planted)
            (resp,), closed = await send_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert resp.status == 500
        assert closed
        assert len(up.requests) == 1
        await assert_blamed_on_gateway(harness, caplog)
        async with (
            aiohttp.ClientSession() as session,
            session.get(harness.admin + "/clusters") as r,
        ):
            state = await r.json()
        assert not state["outbound|80||up.svc"]["hosts"][0]["ejected"]
        (again,), _ = await send_raw(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", close_wait=0)
        assert (again.status, again.body) == (200, b"ok")


async def test_fault_after_response_started_cuts_the_response(
    gateway: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while streaming a response body, after its head went out, cuts the client
    connection (the response is visibly truncated); still the gateway's fault only."""
    needs_python_sources(UpstreamRequest)
    second_chunk = asyncio.Event()

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await second_chunk.wait()
        writer.write(b"4\r\nboom\r\n0\r\n\r\n")
        return True

    original = UpstreamRequest.on_response_body

    def planted(self: UpstreamRequest, data: bytes) -> None:
        if b"boom" in data:
            raise Injected("planted")
        original(self, data)

    async with capture_upstream(respond) as up:
        port, harness = await start(gateway, up.port)
        monkeypatch.setattr(UpstreamRequest, "on_response_body", planted)
        async with connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"first\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            second_chunk.set()
            resp_rest = await asyncio.wait_for(reader.read(-1), 5)
            assert b"boom" not in resp_rest and b"0\r\n\r\n" not in resp_rest
            assert await is_closed(reader)
        assert len(up.requests) == 1
        await assert_blamed_on_gateway(harness, caplog)


async def test_fault_in_a_pipelined_request_keeps_earlier_answers(
    gateway: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Three pipelined requests, a planted bug in the second one's routing: the first is
    answered normally, then 500 and close; the third never reaches the upstream."""
    original = Cluster.pool_for
    calls = 0

    def planted(self: Cluster, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:  # the second request's
            raise Injected("planted")
        return original(self, *args)

    async with capture_upstream() as up:
        port, harness = await start(gateway, up.port)
        monkeypatch.setattr(Cluster, "pool_for", planted)
        data = b"".join(
            b"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n" % p for p in (b"good", b"bad", b"late")
        )
        async with connect(port) as (reader, writer):
            writer.write(data)
            first = await read_response(reader)
            second = await read_response(reader)
            assert await is_closed(reader)
        assert (first.status, second.status) == (200, 500)
        assert [r.target for r in up.requests] == [b"/good"]
        await assert_blamed_on_gateway(harness, caplog)
