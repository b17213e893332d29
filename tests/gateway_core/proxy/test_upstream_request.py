"""Tests for gateway_core/proxy/upstream_request.py: one attempt, and why a stale attempt can
never touch its exchange again."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_core.proxy.http1_wire import Http1ResponseWriter
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.proxy.upstream_request import BUFFER_HIGH, UpstreamRequest
from gateway_core.routing.request import RequestHead
from gateway_core.upstream.host import Host
from tests.gateway_core.proxy.fakes import FakeLoop, FakePool, FakeTransport, Recorder
from tests.helpers import needs_python_sources


@pytest.fixture(autouse=True)
def _python_sources() -> None:
    """The doubles below subclass ``Http1ResponseWriter``, which mypyc's build cannot allow."""
    needs_python_sources(Http1ResponseWriter)


class _Wire:
    """The client transport: counts writes (one per upstream read is the goal)."""

    def __init__(self, down: FakeDown) -> None:
        self.down = down

    def write(self, data: bytes) -> None:
        self.down.out += data
        self.down.writes += 1

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.down.out += part
        self.down.writes += 1


class FakeDown(Http1ResponseWriter, Recorder):
    """The real HTTP/1.1 response writer over a recording transport."""

    def __init__(self) -> None:
        Recorder.__init__(self)
        Http1ResponseWriter.__init__(self)
        self.loop = FakeLoop()
        self.keep_alive = True
        self.http11 = True
        self.closed = False
        self.write_paused = False
        self.out = bytearray()
        self.writes = 0
        self.transport = _Wire(self)  # type: ignore[assignment]

    def write(self, data: bytes) -> None:
        self.out += data
        self.writes += 1

    def draining_now(self) -> bool:
        return False


class FakeExchange(Recorder):
    def __init__(self, framing: str = "none", done: bool = True) -> None:
        super().__init__()
        self.down = FakeDown()
        self.req_framing = framing
        self.req_trailers = None
        self.request_done = done
        self.head = b"POST / HTTP/1.1\r\nhost: h\r\n\r\n"
        self.req = RequestHead(b"POST", b"/", b"", b"h", b"http", 80, [(b"host", b"h")])
        self.bytes_sent = 0
        self.activity = 0.0
        self.upgrade = False
        self.entry = None
        self.target = None

    def guarded(self, step: Any, *args: Any) -> None:
        step(*args)


def attempt(ex: FakeExchange, pending: list[bytes] | None = None) -> tuple[UpstreamRequest, Host]:
    host = Host("10.0.0.1", 80)
    body = pending or []
    ureq = UpstreamRequest(ex, host, FakePool(), body, sum(map(len, body)))  # type: ignore[arg-type]
    return ureq, host


def connection() -> tuple[UpstreamConnection, FakeTransport, FakePool]:
    pool = FakePool()
    conn = UpstreamConnection(pool)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, pool


def test_body_held_until_connected_then_sent_in_order() -> None:
    """Body bytes wait while connecting (the client is paused above the high-water mark), then
    follow the head in order, re-chunked, and the request end closes the chunked body."""
    ex = FakeExchange(framing="chunked", done=False)
    ureq, host = attempt(ex)
    ureq.send(b"a" * BUFFER_HIGH)
    ureq.send(b"b")
    assert ("pause_reading", ("body",)) in ex.down.calls
    conn, transport, _ = connection()
    ureq.on_connection(conn)
    ex.request_done = True
    ureq.end()
    expected = ex.head + b"10000\r\n" + b"a" * BUFFER_HIGH + b"\r\n1\r\nb\r\n0\r\n\r\n"
    assert bytes(transport.written) == expected
    assert ("resume_reading", ("body",)) in ex.down.calls
    assert host.active_requests == 1 and ureq.sent


def test_accepted_response_streams_to_client() -> None:
    """Once the exchange accepts the head, body bytes are re-framed chunked for the client and
    the completion reports the attempt done; each upstream read becomes one client write."""
    ex = FakeExchange()
    ureq, host = attempt(ex)
    conn, _, pool = connection()
    ureq.on_connection(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert ex.names() == ["attempt_response_head"]
    ureq.start_response(200, [], "chunked", [])
    assert ex.down.writes == 0
    ureq.flush()
    conn.data_received(b"3\r\nabc\r\n0\r\n\r\n")
    assert ex.names() == ["attempt_response_head", "attempt_complete"]
    assert ex.down.out.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert ex.down.writes == 2
    assert host.active_requests == 0 and pool.released == [conn]


def test_unaccepted_response_is_drained_not_forwarded() -> None:
    """A response the exchange will retry is read to its end without reaching the client."""
    ex = FakeExchange()
    ureq, _ = attempt(ex)
    conn, _, pool = connection()
    ureq.on_connection(conn)
    conn.data_received(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy")
    assert ex.names() == ["attempt_response_head", "attempt_complete"]
    assert ex.down.out == b""
    assert pool.released == [conn]


def test_abandoned_attempt_never_calls_back() -> None:
    """After abandon the connection is detached and aborted: its late response, its close and
    a connection handed over later never reach the exchange (the connection goes back)."""
    ex = FakeExchange()
    ureq, host = attempt(ex)
    conn, transport, _ = connection()
    ureq.on_connection(conn)
    ureq.abandon()
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.connection_lost(None)
    assert ex.calls == []
    assert transport.aborted and host.active_requests == 0
    waiting, _ = attempt(ex)
    waiting.abandon()
    late, _, late_pool = connection()
    waiting.on_connection(late)
    waiting.on_connect_failed("refused", False)
    assert ex.calls == []
    assert late_pool.released == [late]


def test_per_try_timeout_fires_once_and_detaches() -> None:
    """perTryTimeout abandons the attempt (connection aborted) and reports one timeout; the
    connection's later close is not reported again."""
    ex = FakeExchange()
    ureq, _ = attempt(ex)
    conn, transport, _ = connection()
    ureq.on_connection(conn)
    ureq.arm_try_timer(0.5)
    (timer,) = ex.down.loop.timers
    timer.fire()
    assert ex.calls == [("attempt_failed", (ureq, "timeout"))]
    conn.connection_lost(None)
    assert len(ex.calls) == 1
    assert transport.aborted


def test_finished_attempt_cancels_its_timer() -> None:
    """A completed attempt cancels its per-try timer."""
    ex = FakeExchange()
    ureq, _ = attempt(ex)
    conn, _, _ = connection()
    ureq.on_connection(conn)
    ureq.arm_try_timer(0.5)
    ureq.start_response(204, [], "none", [])
    conn.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    (timer,) = ex.down.loop.timers
    assert timer.cancelled


def test_failures_reported_with_their_kind() -> None:
    """Connect failures, resets and protocol errors reach the exchange as failure kinds; the
    body a failed connect never sent is handed back for the next attempt."""
    ex = FakeExchange(framing="length", done=False)
    ureq, _ = attempt(ex, [b"xy"])
    ureq.on_connect_failed("connection refused", False)
    assert ex.calls == [("attempt_failed", (ureq, "connect-failure", b"connection refused"))]
    assert ureq.take_unsent() == [b"xy"]
    reset, _ = attempt(ex)
    conn, _, _ = connection()
    reset.on_connection(conn)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert ex.calls[-1] == ("attempt_failed", (reset, "protocol-error"))
