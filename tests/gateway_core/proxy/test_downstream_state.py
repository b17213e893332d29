"""Tests for gateway_core/proxy/downstream.py without sockets: the client connection's state
machine driven by bytes (``data_received``/``eof_received``) and a fake clock.

The process is the smallest ``GatewayContext`` that fits (real settings, metrics and a route
table compiled from YAML; no clusters). Routes answer at once (``/fast``: a direct response) or
hold the request on a fake-clock timer (``/slow``: a fault delay, then 503 ``NC``, as no cluster
is live), so responses in flight, pipelining and deadlines are all under the test's control.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway_core.pipeline import build_snapshot
from gateway_core.proxy.downstream import MAX_PIPELINED, DownstreamProtocol
from gateway_core.proxy.exchange import Exchange
from gateway_core.snapshot import NodeInfo
from tests.gateway_core.proxy.fakes import (
    SETTINGS,
    FakeListener,
    FakeLoop,
    FakeRuntime,
    FakeTransport,
)
from tests.helpers import needs_python_sources

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /slow}}]
    fault: {delay: {percentage: {value: 100}, fixedDelay: 5s}}
    route: [{destination: {host: up.svc}}]
  - match: [{uri: {prefix: /fast}}]
    directResponse: {status: 200, body: {string: fast}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: up}
spec:
  hosts: [up.svc]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
"""


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(CONFIG)
    result = build_snapshot([path], NodeInfo())
    assert result.snapshot is not None, result.diagnostics
    return result.snapshot


class Client:
    """One connection under test and what it did to its (fake) transport."""

    def __init__(self, snapshot: Any) -> None:
        self.runtime = FakeRuntime(snapshot)
        self.loop = FakeLoop()
        listener = FakeListener(snapshot.listeners[0].servers[0].route_table)
        self.conn = DownstreamProtocol(self.runtime, listener, self.loop)  # type: ignore[arg-type]
        self.transport = FakeTransport()
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        self.conn.data_received(data)

    def statuses(self) -> list[int]:
        return [int(s) for s in re.findall(rb"HTTP/1\.1 (\d{3}) ", bytes(self.transport.written))]


def get(path: bytes, extra: bytes = b"") -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n" + extra + b"\r\n"


def test_pipelined_requests_answered_in_order(snapshot: Any) -> None:
    """A slow first request holds the answers of the fast ones behind it; the client is not
    read while requests wait; all answers come out in request order."""
    c = Client(snapshot)
    c.send(get(b"/slow") + get(b"/fast/1") + get(b"/fast/2"))
    assert c.transport.written == b""
    assert len(c.conn.queue) == 2 and not c.transport.reading
    c.loop.advance(5.0)
    assert c.statuses() == [503, 200, 200]
    assert c.runtime.observed == [503, 200, 200]
    assert c.transport.reading and not c.transport.closed


def test_pipeline_cap_holds_the_rest_unparsed(snapshot: Any) -> None:
    """A burst of 100 requests: never more than ``MAX_PIPELINED`` wait; the rest of the bytes
    stay unparsed until answers make room; all 100 are answered in order."""
    c = Client(snapshot)
    queue_lengths = []
    c.send(b"".join(get(b"/slow/%d" % i) for i in range(100)))
    assert len(c.conn.queue) == MAX_PIPELINED
    assert c.conn.requests == MAX_PIPELINED + 1
    assert not c.transport.reading
    while c.conn.current is not None:
        queue_lengths.append(len(c.conn.queue))
        c.loop.advance(5.0)
    assert max(queue_lengths) == MAX_PIPELINED
    assert c.statuses() == [503] * 100
    assert c.conn.requests == 100
    assert c.transport.reading and not c.transport.closed


def test_partial_head_gets_408_at_the_header_deadline(snapshot: Any) -> None:
    """A head still incomplete ``header_timeout`` after its first byte: 408, then close."""
    c = Client(snapshot)
    c.send(b"GET /fast HTTP/1.1\r\nHost: h\r\n")
    c.loop.advance(SETTINGS.header_timeout - 1)
    assert not c.transport.closed
    c.loop.advance(1.0)
    assert c.statuses() == [408] and c.transport.closed


def test_idle_connection_closed_silently(snapshot: Any) -> None:
    """A keep-alive connection with nothing arriving closes after ``idle_timeout`` with no
    response (and a fresh one after ``header_timeout``)."""
    c = Client(snapshot)
    c.send(get(b"/fast"))
    c.loop.advance(SETTINGS.idle_timeout - 1)
    assert not c.transport.closed
    c.loop.advance(1.0)
    assert c.statuses() == [200] and c.transport.closed


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /fast HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", 400),
        (b"GET /fast HTTP/1.1\r\nHost: h<x>\r\n\r\n", 400),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (get(b"/fast", b"".join(b"X-%d: v\r\n" % i for i in range(150))), 431),
        (b"GET /fast HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    ],
)
def test_malformed_request_answered_and_closed(snapshot: Any, data: bytes, status: int) -> None:
    """400/414/431/505: answered at once (nothing is in flight), counted as a protocol error,
    and the connection closes."""
    c = Client(snapshot)
    c.send(data)
    assert c.statuses() == [status] and c.transport.closed
    assert c.runtime.metrics.protocol_errors == {str(status): 1}


def test_reject_waits_for_the_response_in_flight(snapshot: Any) -> None:
    """A malformed request behind one being answered: its 400 follows that answer, then the
    connection closes; nothing after it is parsed."""
    c = Client(snapshot)
    c.send(get(b"/slow") + b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n" + get(b"/fast"))
    assert c.transport.written == b"" and not c.transport.closed
    c.loop.advance(5.0)
    assert c.statuses() == [503, 400] and c.transport.closed


def test_half_close_after_complete_requests(snapshot: Any) -> None:
    """EOF after complete requests: the transport stays open for the answers, then closes."""
    c = Client(snapshot)
    c.send(get(b"/slow") + get(b"/fast"))
    assert c.conn.eof_received() is True
    assert not c.transport.closed
    c.loop.advance(5.0)
    assert c.statuses() == [503, 200] and c.transport.closed


def test_half_close_with_nothing_owed_closes(snapshot: Any) -> None:
    c = Client(snapshot)
    c.send(get(b"/fast"))
    assert c.conn.eof_received() is False
    assert c.statuses() == [200] and c.transport.closed


def test_half_close_inside_a_head_is_an_abort(snapshot: Any) -> None:
    """EOF inside a request head: no answer for it, the connection closes."""
    c = Client(snapshot)
    c.send(b"GET /fast HTTP/1.1\r\nHo")
    assert c.conn.eof_received() is False
    assert c.transport.written == b"" and c.transport.closed


def test_half_close_inside_a_body_aborts_the_exchange(snapshot: Any) -> None:
    """EOF inside the body of the request being answered: the exchange ends as a client abort
    (``DC``) and the connection is cut."""
    c = Client(snapshot)
    c.send(b"POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n1234")
    assert c.conn.eof_received() is False
    assert c.transport.aborted
    assert c.runtime.flags == ["DI", "DC"]


def test_half_close_inside_a_queued_body_answers_the_earlier_ones(snapshot: Any) -> None:
    """EOF inside the body of a pipelined request: the requests before it are answered, then
    the connection closes."""
    c = Client(snapshot)
    c.send(get(b"/slow") + b"POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12")
    assert c.conn.eof_received() is True
    assert list(c.conn.queue) == []
    c.loop.advance(5.0)
    assert c.statuses() == [503] and c.transport.closed


def test_bug_in_the_request_path_is_500_not_400(
    snapshot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in the gateway's own code (httptools wraps it as a parser error) is an
    internal error: 500, counted as such, never as a protocol error."""

    def planted(self: Exchange) -> None:
        raise RuntimeError("planted")

    needs_python_sources(Exchange)
    c = Client(snapshot)
    monkeypatch.setattr(Exchange, "begin", planted)
    c.send(get(b"/fast") + get(b"/fast"))
    assert c.statuses() == [500] and c.transport.closed
    assert c.runtime.metrics.internal_errors == 1
    assert c.runtime.metrics.protocol_errors == {}


def test_half_close_with_a_backlog_answers_what_is_complete(snapshot: Any) -> None:
    """EOF while requests still wait unparsed (the pipeline was full): every complete one is
    answered; one whose body the client never finished is dropped; then the close."""
    c = Client(snapshot)
    burst = b"".join(get(b"/slow/%d" % i) for i in range(MAX_PIPELINED + 5))
    c.send(burst + b"POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\n12")
    assert c.conn.eof_received() is True
    while c.conn.current is not None:
        c.loop.advance(5.0)
    assert c.statuses() == [503] * (MAX_PIPELINED + 5)
    assert c.transport.closed and not c.transport.aborted
