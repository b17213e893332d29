"""Tests for gateway_core/proxy/upstream_conn.py: strict response parsing on one connection."""

from __future__ import annotations

from typing import Any

import pytest

from gateway_core.proxy.upstream_conn import MAX_HEADER_BYTES, UpstreamConnection, _framing
from tests.gateway_core.proxy.fakes import FakePool, FakeTransport, Recorder


def connected(reuse: bool = True) -> tuple[UpstreamConnection, FakeTransport, FakePool, Recorder]:
    pool = FakePool(reuse)
    conn = UpstreamConnection(pool)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    sink = Recorder()
    return conn, transport, pool, sink


def start(conn: UpstreamConnection, sink: Any, *, sent: bool = True, head: bool = False) -> None:
    conn.attach(sink, b"GET / HTTP/1.1\r\nhost: h\r\n\r\n", head, sent)


@pytest.mark.parametrize(
    ("headers", "status", "no_body", "framing"),
    [
        ([(b"content-length", b"3")], 200, False, "length"),
        ([(b"transfer-encoding", b"chunked")], 200, False, "chunked"),
        ([], 200, False, "eof"),
        ([(b"content-length", b"3")], 200, True, "none"),
        ([], 204, False, "none"),
        ([], 304, False, "none"),
    ],
)
def test_framing(
    headers: list[tuple[bytes, bytes]], status: int, no_body: bool, framing: str
) -> None:
    """Body delimitation follows RFC 9112 §6.3 (HEAD and 204/304 have none)."""
    assert _framing(headers, status, no_body) == framing


def test_response_streamed_and_connection_reused() -> None:
    """Head, body pieces and completion reach the sink; the connection goes back to the pool
    before the sink hears of the completion."""
    conn, transport, pool, sink = connected()
    start(conn, sink)
    assert transport.written.startswith(b"GET / HTTP/1.1")
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
    conn.data_received(b"lo")
    assert sink.names() == [
        "on_response_head",
        "on_response_body",
        "on_response_body",
        "on_response_complete",
    ]
    assert sink.events()[0][1][0] == 200 and sink.events()[0][1][2] == "length"
    assert sink.events()[-1][1] == (True,)
    assert pool.released == [conn]


def test_early_response_is_not_reused() -> None:
    """A response that completes before the request body was fully sent leaves the request's
    framing unfinished: the connection closes instead of returning to the pool."""
    conn, transport, pool, sink = connected()
    start(conn, sink, sent=False)
    conn.data_received(b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert sink.events()[-1] == ("on_response_complete", (False,))
    assert pool.released == [] and transport.closed


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n",
        b"NOT HTTP\r\n\r\n",
    ],
)
def test_invalid_response_is_a_protocol_error(response: bytes) -> None:
    """Invalid framing or an oversize head is reported as a protocol error (never a head) and
    the connection is aborted."""
    conn, transport, pool, sink = connected()
    start(conn, sink)
    conn.data_received(response)
    assert sink.events() == [("on_upstream_lost", (True,))]
    assert transport.aborted and pool.released == []


def test_interim_response_skipped() -> None:
    """A 100 Continue from the upstream is not forwarded; the final response is."""
    conn, _, _, sink = connected()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert sink.names() == ["on_response_head", "on_response_complete"]
    assert sink.events()[0][1][0] == 204


def test_head_response_completes_at_headers() -> None:
    """A HEAD answer with Content-Length has no body and completes with its head."""
    conn, _, pool, sink = connected()
    start(conn, sink, head=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
    assert sink.names() == ["on_response_head", "on_response_complete"]
    assert pool.released == [conn]


def test_switching_protocols_turns_into_a_tunnel() -> None:
    """After a 101 the sink gets the rest as tunnel bytes, and later bytes unparsed."""
    conn, _, _, sink = connected()
    start(conn, sink)
    conn.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfr"
    )
    assert sink.names() == ["on_response_head", "on_upstream_upgrade"]
    assert sink.events()[1][1] == (conn, b"fr")
    conn.data_received(b"ame")
    assert sink.events()[-1] == ("on_response_body", (b"ame",))


def test_eof_delimited_body_completes_at_close() -> None:
    """Without a length the body ends with the connection, which is never reused."""
    conn, _, pool, sink = connected()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\nbody")
    conn.connection_lost(None)
    assert sink.names() == ["on_response_head", "on_response_body", "on_response_complete"]
    assert sink.events()[-1][1] == (False,)
    assert pool.closed == [conn]


def test_lost_before_response_reported() -> None:
    """A connection lost mid-response is reported as lost (not a protocol error)."""
    conn, _, _, sink = connected()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab")
    conn.connection_lost(ConnectionResetError())
    assert sink.events()[-1] == ("on_upstream_lost", (False,))


def test_unsolicited_bytes_abort() -> None:
    """Bytes with no request outstanding mean a broken upstream: abort, never reuse; counted
    as extra data."""
    conn, transport, pool, _ = connected()
    conn.data_received(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.aborted
    assert pool.cluster.stats.extra_data == 1


def test_detach_silences_the_connection() -> None:
    """After detach nothing the connection does reaches its former sink."""
    conn, transport, _, sink = connected()
    start(conn, sink)
    conn.detach()
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    conn.connection_lost(None)
    assert sink.calls == []
    assert transport.aborted


def test_each_read_ends_with_a_flush() -> None:
    """After every read that did not end the request the sink is told to flush, so a head and
    the body bytes of the same read reach the client in one write; the read that ends it ends
    with the completion (which flushes)."""
    conn, _, _, sink = connected()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    conn.data_received(b"cd")
    assert sink.names(flushes=True) == [
        "on_response_head",
        "on_response_body",
        "flush",
        "on_response_body",
        "on_response_complete",
    ]


class ReleaseRecorder(FakePool):
    """A pool that hands a released connection to the next request at once, as a real pool
    with a waiter does: what the connection parses after that reaches ``next_sink``."""

    def __init__(self) -> None:
        super().__init__()
        self.next_sink = Recorder()

    def release(self, conn: Any) -> None:
        super().release(conn)
        start(conn, self.next_sink)


@pytest.mark.parametrize(
    "read",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON",
        b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nPOISON",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokH",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nokHTTP/1.1 200",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok garbage",
    ],
)
def test_bytes_after_a_complete_response_close_the_connection(read: bytes) -> None:
    """Issue 9, defect 6: a second response (or any byte) after a complete response in the same
    read is never parsed for the next request. The response completes, not reusable; the
    connection closes and is counted."""
    pool = ReleaseRecorder()
    conn = UpstreamConnection(pool)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    sink = Recorder()
    start(conn, sink)
    conn.data_received(read)
    body = [] if read.startswith(b"HTTP/1.1 204") else ["on_response_body"]
    assert sink.names() == ["on_response_head", *body, "on_response_complete"]
    assert sink.events()[-1] == ("on_response_complete", (False,))
    assert b"POISON" not in b"".join(a[0] for n, a in sink.events() if n == "on_response_body")
    assert pool.released == [] and pool.next_sink.calls == []
    assert transport.aborted
    assert pool.cluster.stats.extra_data == 1


def test_head_response_followed_by_body_bytes_is_extra_data() -> None:
    """A HEAD answer completes at its head; body bytes after it are extra data."""
    conn, transport, pool, sink = connected()
    start(conn, sink, head=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert sink.names() == ["on_response_head", "on_response_complete"]
    assert sink.events()[-1][1] == (False,)
    assert transport.aborted and pool.released == []
    assert pool.cluster.stats.extra_data == 1


def test_empty_lines_after_a_response_are_harmless() -> None:
    """A stray CRLF after a body (llhttp skips empty lines between messages) is no response:
    the connection is reused."""
    conn, transport, pool, sink = connected()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok\r\n")
    assert sink.events()[-1] == ("on_response_complete", (True,))
    assert pool.released == [conn] and not transport.aborted
    assert pool.cluster.stats.extra_data == 0


class FailingSink(Recorder):
    """A sink whose response-head handling has a bug."""

    def on_response_head(self, *args: Any) -> None:
        self.calls.append(("on_response_head", args))
        raise RuntimeError("bug")


def test_bug_in_the_sink_is_an_internal_error_not_a_protocol_error() -> None:
    """Issue 9, defect 2: an exception the gateway's own code raises while a response is
    parsed (httptools wraps it as a parser error) is mapped by the sink as an internal error:
    the connection is dropped, nothing reports the upstream lost or broken."""
    conn, transport, pool, _ = connected()
    sink = FailingSink()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    names = sink.names()
    assert names == ["on_response_head", "on_internal_error"]
    assert isinstance(sink.events()[1][1][0], RuntimeError)
    assert transport.aborted and pool.released == []
    assert pool.cluster.stats.extra_data == 0


def test_bug_after_release_leaves_the_reused_connection_alone() -> None:
    """A bug raised once the response is handed on (the connection already back in its pool)
    is still mapped by that sink, but the connection, now serving someone else, stays."""

    class FailsOnComplete(Recorder):
        def on_response_complete(self, reusable: bool) -> None:
            self.calls.append(("on_response_complete", (reusable,)))
            raise RuntimeError("bug")

    pool = ReleaseRecorder()
    conn = UpstreamConnection(pool)  # type: ignore[arg-type]
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    sink = FailsOnComplete()
    start(conn, sink)
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    assert sink.names() == [
        "on_response_head",
        "on_response_body",
        "on_response_complete",
        "on_internal_error",
    ]
    assert pool.released == [conn] and not transport.aborted
    assert conn.sink is pool.next_sink
