"""Data path: the HTTP/1.1 codec's writing half, the one place where responses become bytes.

The router and its attempts hand responses over as events (a head with a neutral header list,
body data, an end with optional trailers, a local reply); ``Http1ResponseWriter``, mixed into the
HTTP/1.1 downstream connection, turns them into status lines and framing. An HTTP/2 stream
implements the same methods with frames (``h2_downstream.py``).

Framing for the client (RFC 9112 §6): a body the upstream delimited by length keeps its
Content-Length; any other body goes chunked to an HTTP/1.1 client (trailers only fit there) and
unframed, then closed, to an HTTP/1.0 client, which cannot read chunked framing (§6.1).
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import TYPE_CHECKING

from gateway_core.proxy.headers import fields_text
from gateway_core.routing.actions import HeaderList

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import ExchangeView

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in REASONS.items()}
_END = b"server: multicluster-gateway\r\n\r\n"
_END_CLOSE = b"server: multicluster-gateway\r\nconnection: close\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"


def reason(status: int) -> bytes:
    return REASONS.get(status, b"Unknown")


def render(
    status: int,
    body: bytes,
    *,
    extra: HeaderList | None = None,
    close: bool = False,
    head_only: bool = False,
    content_type: bytes = b"text/plain",
) -> bytes:
    """A complete HTTP/1.1 response written by the gateway itself."""
    lines = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
    if body:
        lines.append(b"content-type: " + content_type + b"\r\n")
    if body or status not in (204, 304):
        lines.append(b"content-length: %d\r\n" % len(body))
    for name, value in extra or ():
        lines.append(name + b": " + value + b"\r\n")
    lines.append(_END_CLOSE if close else _END)
    if not head_only:
        lines.append(body)
    return b"".join(lines)


def response_head(
    status: int, headers: HeaderList, length: bytes | None, *, chunked: bool, close: bool
) -> bytes:
    """A proxied response's head: ``headers`` are final (header operations applied),
    ``length`` the Content-Length to announce, if any."""
    parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
    if headers:
        parts += (fields_text(headers), b"\r\n")
    if length is not None:
        parts += (b"content-length: ", length, b"\r\n")
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    parts.append(_END_CLOSE if close else _END)
    return b"".join(parts)


def switching_protocols(headers: HeaderList) -> bytes:
    """The upstream's 101 as is (Upgrade and Connection included), without framing fields."""
    parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    for name, value in headers:
        if name not in (b"content-length", b"transfer-encoding"):
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def last_chunk(trailers: HeaderList | None) -> bytes:
    if not trailers:
        return _LAST_CHUNK
    return b"0\r\n" + fields_text(trailers) + b"\r\n\r\n"


class Http1ResponseWriter:
    """Response events → HTTP/1.1 bytes for one connection (one response at a time).

    Bytes of one upstream read are collected in ``_out`` and written in one go by ``flush``.
    The host class provides ``transport``, ``closed`` and ``draining_now``."""

    __slots__ = ("_chunked", "_out", "http11", "keep_alive")

    transport: asyncio.Transport | None
    closed: bool

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._chunked = False
        self.keep_alive = True
        """The connection persists after this response (both sides allow it)."""
        self.http11 = True
        """The client speaks HTTP/1.1 (not 1.0): it can read chunked framing."""

    def draining_now(self) -> bool:
        raise NotImplementedError

    def send_local_reply(
        self, ex: ExchangeView, status: int, body: bytes, extra: HeaderList
    ) -> None:
        if not ex.request_done or ex.upgrade:
            self.keep_alive = False  # unread body bytes, or a client expecting a tunnel
        close = not self.keep_alive or self.draining_now()
        head_only = ex.req.method == b"HEAD"
        self._write(render(status, body, extra=extra, close=close, head_only=head_only))

    def send_continue(self) -> None:
        self._write(CONTINUE)

    def send_switching_protocols(self, headers: HeaderList) -> None:
        self._write(switching_protocols(headers))

    def send_response_head(
        self, ex: ExchangeView, status: int, headers: HeaderList, framing: str, length: bytes | None
    ) -> None:
        """``framing`` is how the upstream delimited the body (``length``, ``none``,
        ``chunked``, ``eof``)."""
        if ex.upgrade:
            self.keep_alive = False  # a refused upgrade leaves the client's framing unknown
        chunked = False
        if framing == "length" or framing == "none":
            if framing == "none" and ex.req.method != b"HEAD":
                length = None  # 204/304 and friends announce no length
        else:  # chunked or eof: re-framed chunked for HTTP/1.1, unframed and closed for 1.0
            length = None
            chunked = self.http11
            if not chunked:
                self.keep_alive = False
        close = not self.keep_alive or self.draining_now()
        self.keep_alive = not close
        self._chunked = chunked
        self._out.append(response_head(status, headers, length, chunked=chunked, close=close))

    def send_body(self, data: bytes) -> None:
        if self._chunked:
            self._out += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            self._out.append(data)

    def end_response(self, trailers: HeaderList | None) -> None:
        """The response is complete; trailers reach HTTP/1.1 clients in the last chunk."""
        if self._chunked:
            self._chunked = False
            self._out.append(last_chunk(trailers))

    def flush(self) -> None:
        out = self._out
        if out:
            self._out = []
            transport = self.transport
            if transport is not None and not self.closed:
                if len(out) == 1:
                    transport.write(out[0])
                else:
                    transport.writelines(out)

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self.flush()
