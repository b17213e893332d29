"""Tests for gateway_core/proxy/http1_wire.py: response events in, HTTP/1.1 bytes out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from gateway_core.proxy.http1_wire import (
    Http1ResponseWriter,
    last_chunk,
    render,
    response_head,
    switching_protocols,
)
from tests.helpers import needs_python_sources


@pytest.fixture(autouse=True)
def _python_sources() -> None:
    """The doubles below subclass ``Http1ResponseWriter``, which mypyc's build cannot allow."""
    needs_python_sources(Http1ResponseWriter)


class FakeTransport:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.data += part


class Writer(Http1ResponseWriter):
    __slots__ = ("closed", "draining", "transport")

    def __init__(self, http11: bool = True) -> None:
        super().__init__()
        self.transport = cast(Any, FakeTransport())
        self.closed = False
        self.keep_alive = True
        self.http11 = http11
        self.draining = False

    def draining_now(self) -> bool:
        return self.draining

    @property
    def wire(self) -> bytes:
        return bytes(self.transport.data)


@dataclass
class Req:
    method: bytes = b"GET"


@dataclass
class Ex:
    req: Req = field(default_factory=Req)
    request_done: bool = True
    upgrade: bool = False


def _ex(**kw: Any) -> Any:
    return Ex(**kw)


def test_response_head_bytes() -> None:
    out = response_head(200, [(b"x", b"1")], b"10", chunked=False, close=True)
    assert out == (
        b"HTTP/1.1 200 OK\r\nx: 1\r\ncontent-length: 10\r\n"
        b"server: multicluster-gateway\r\nconnection: close\r\n\r\n"
    )
    assert b"transfer-encoding: chunked\r\n" in response_head(
        200, [], None, chunked=True, close=False
    )
    assert response_head(299, [], None, chunked=False, close=False).startswith(
        b"HTTP/1.1 299 Unknown\r\n"
    )


def test_length_body_passes_unframed_and_keeps_alive() -> None:
    w = Writer()
    w.send_response_head(_ex(), 200, [(b"a", b"b")], "length", b"5")
    w.send_body(b"hello")
    w.end_response(None)
    w.flush()
    assert w.wire == response_head(200, [(b"a", b"b")], b"5", chunked=False, close=False) + b"hello"
    assert w.keep_alive


@pytest.mark.parametrize("framing", ["chunked", "eof"])
def test_unknown_length_is_chunked_for_http11_with_trailers(framing: str) -> None:
    w = Writer()
    w.send_response_head(_ex(), 200, [], framing, None)
    w.send_body(b"abc")
    w.end_response([(b"grpc-status", b"0")])
    w.flush()
    assert w.wire.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n")
    assert b"transfer-encoding: chunked" in w.wire
    assert w.keep_alive


@pytest.mark.parametrize("framing", ["chunked", "eof"])
def test_http10_client_gets_unframed_body_and_close(framing: str) -> None:
    """RFC 9112 §6.1: no chunked framing to an HTTP/1.0 client; the close delimits the body."""
    w = Writer(http11=False)
    w.send_response_head(_ex(), 200, [], framing, None)
    w.send_body(b"abc")
    w.end_response([(b"x-trailer", b"1")])
    w.flush()
    assert w.wire.endswith(b"connection: close\r\n\r\nabc")
    assert b"chunked" not in w.wire
    assert not w.keep_alive


def test_head_response_keeps_length_and_204_announces_none() -> None:
    w = Writer()
    w.send_response_head(_ex(req=Req(b"HEAD")), 200, [], "none", b"10")
    w.flush()
    assert b"content-length: 10\r\n" in w.wire
    w2 = Writer()
    w2.send_response_head(_ex(), 204, [], "none", b"10")
    w2.flush()
    assert b"content-length" not in w2.wire


def test_local_reply_closes_when_body_unread_or_draining() -> None:
    w = Writer()
    w.send_local_reply(_ex(request_done=False), 413, b"too big\n", [])
    assert w.wire == render(413, b"too big\n", close=True)
    assert not w.keep_alive
    d = Writer()
    d.draining = True
    d.send_local_reply(_ex(), 200, b"", [(b"x", b"y")])
    assert d.wire.endswith(b"x: y\r\nserver: multicluster-gateway\r\nconnection: close\r\n\r\n")
    h = Writer()
    h.send_local_reply(_ex(req=Req(b"HEAD")), 404, b"nope\n", [])
    assert h.wire.endswith(b"\r\n\r\n") and b"content-length: 5\r\n" in h.wire


def test_interim_and_switching() -> None:
    w = Writer()
    w.send_continue()
    w.send_switching_protocols([(b"upgrade", b"websocket"), (b"content-length", b"0")])
    assert w.wire == (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"
    )
    assert switching_protocols([]) == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    assert last_chunk(None) == b"0\r\n\r\n"


def test_nothing_is_written_after_close() -> None:
    w = Writer()
    w.closed = True
    w.send_response_head(_ex(), 200, [], "length", b"0")
    w.flush()
    assert w.wire == b""
