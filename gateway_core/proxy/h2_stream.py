"""Data path: ``H2Stream``, one HTTP/2 request stream as an ``Exchange``'s downstream.

It offers the exchange what an HTTP/1.1 connection offers (the response events, flow control,
the client's addresses) and turns the response events into HEADERS, DATA and trailing HEADERS
frames through the connection's codec. ``request_from_head`` maps the codec's request event to
the router's ``RequestHead`` (RFC 9113 §8.3: ``:authority`` is the Host).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from gateway_core.proxy.client_info import TlsFacts, origin_ip, trusts_https
from gateway_core.proxy.codec.events import RequestHead as H2RequestHead
from gateway_core.proxy.errors import report_internal_error
from gateway_core.proxy.interfaces import ClientFacts
from gateway_core.proxy.request_checks import BadRequest, request_target, valid_authority
from gateway_core.routing.actions import HeaderList
from gateway_core.routing.request import RequestHead, join_headers

if TYPE_CHECKING:
    from gateway_core.proxy.codec.http2 import H2ServerCodec
    from gateway_core.proxy.context import GatewayContext, ListenerContext
    from gateway_core.proxy.interfaces import ClientExchange, ExchangeView

HIGH_WATER = 262144
"""Response bytes buffered for a stream the client does not read: above this, stop reading its
upstream until the window opens again."""
_SERVER = (b"server", b"multicluster-gateway")
_CANCEL = 8


class H2StreamOwner(ClientFacts, Protocol):
    """The HTTP/2 connection a stream belongs to (``H2Downstream`` implements it)."""

    @property
    def listener(self) -> ListenerContext: ...
    @property
    def codec(self) -> H2ServerCodec: ...
    @property
    def scheme(self) -> bytes: ...
    @property
    def draining(self) -> bool: ...
    @property
    def transport_paused(self) -> bool: ...

    def flush(self) -> None: ...
    def flush_soon(self) -> None: ...
    def stream_finished(self, stream: H2Stream, ex: ClientExchange, abort: bool) -> None: ...


def request_from_head(conn: H2StreamOwner, head: H2RequestHead) -> tuple[RequestHead, str]:
    """The router's view of an HTTP/2 request and the body framing it implies upstream
    (``none`` with END_STREAM on the head, ``length`` with a Content-Length, else chunked)."""
    method = head.method
    if method == b"CONNECT":
        raise BadRequest(405, b"CONNECT is not supported\n")
    authority = head.authority
    if not authority:
        authority = conn.listener.default_authority
    if not valid_authority(authority):
        raise BadRequest(400, b"invalid :authority\n")
    headers = [f for f in head.headers if f[0].find(b"_") < 0]  # Envoy DROP_HEADER
    path, query, absolute = request_target(head.path, method, headers)
    if absolute is not None:
        raise BadRequest(400, b"absolute-form :path\n")
    joined = join_headers(headers)
    if head.end_stream:
        framing = "none"
    elif b"content-length" in joined:
        framing = "length"
    else:
        framing = "chunked"
    req = RequestHead(
        method,
        path,
        query,
        authority,
        conn.scheme,
        conn.listener.port,
        headers,
        conn.client_ip,
        headers=joined,
    )
    return req, framing


class H2Stream:
    __slots__ = (
        "_paused",
        "_unacked",
        "conn",
        "ex",
        "head_only",
        "keep_alive",
        "reset_by_peer",
        "stream_id",
        "tunnel",
        "upstream_paused",
    )

    http11 = True
    """Only read by HTTP/1.1 framing decisions; an HTTP/2 stream frames every body itself."""
    http2 = True

    def __init__(self, conn: H2StreamOwner, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.ex: ClientExchange | None = None
        self.keep_alive = True
        self.tunnel: object | None = None
        self.head_only = False
        self.upstream_paused = False
        self._paused: set[str] = set()
        self._unacked = 0
        self.reset_by_peer = False

    # -- what the exchange reads -------------------------------------------------------------
    @property
    def runtime(self) -> GatewayContext:
        return self.conn.runtime

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.conn.loop

    @property
    def route_table(self) -> str:
        return self.conn.route_table

    @property
    def client_ip(self) -> str:
        return self.conn.client_ip

    @property
    def client_ip_bytes(self) -> bytes:
        return self.conn.client_ip_bytes

    @property
    def peer_address(self) -> tuple[str, int]:
        return self.conn.peer_address

    @property
    def local_address(self) -> tuple[str, int]:
        return self.conn.local_address

    @property
    def trust_forwarded(self) -> bool:
        return self.conn.trust_forwarded

    @property
    def tls_facts(self) -> TlsFacts | None:
        return self.conn.tls_facts

    @property
    def write_paused(self) -> bool:
        return self.upstream_paused

    def draining_now(self) -> bool:
        return self.conn.draining or self.conn.runtime.draining

    def trusts_https(self, req: RequestHead) -> bool:
        return trusts_https(self.conn.trust_forwarded, req)

    def origin_ip(self, req: RequestHead) -> str:
        return origin_ip(self.conn.runtime.settings.xff_trusted_hops, req, self.conn.client_ip)

    # -- request body flow control -----------------------------------------------------------
    def on_data(self, data: bytes, end_stream: bool) -> None:
        ex = self.ex
        if ex is None or ex.finished:
            self.conn.codec.consumed(self.stream_id, len(data))
            return
        if data:
            if self._paused:
                self._unacked += len(data)
            else:
                self.conn.codec.consumed(self.stream_id, len(data))
            ex.on_request_body(data)
        if end_stream:
            ex.on_request_complete()

    def on_trailers(self, trailers: HeaderList) -> None:
        ex = self.ex
        if ex is not None and not ex.finished:
            ex.req_trailers = trailers
            ex.on_request_complete()

    def pause_reading(self, reason: str) -> None:
        self._paused.add(reason)

    def resume_reading(self, reason: str) -> None:
        if reason not in self._paused:
            return
        self._paused.discard(reason)
        if not self._paused and self._unacked:
            unacked, self._unacked = self._unacked, 0
            self.conn.codec.consumed(self.stream_id, unacked)
            self.conn.flush()

    # -- response events -----------------------------------------------------------------------
    def send_local_reply(
        self, ex: ExchangeView, status: int, body: bytes, extra: HeaderList
    ) -> None:
        headers: HeaderList = []
        if body:
            headers.append((b"content-type", b"text/plain"))
        if body or status not in (204, 304):
            headers.append((b"content-length", b"%d" % len(body)))
        headers += extra
        headers.append(_SERVER)
        head_only = ex.req.method == b"HEAD"
        codec = self.conn.codec
        codec.send_response_head(self.stream_id, status, headers, end_stream=head_only or not body)
        if body and not head_only:
            codec.send_data(self.stream_id, body, end_stream=True)
        self.conn.flush()

    def reply_bad_request(self, status: int, message: bytes, head_only: bool) -> None:
        """A request the router never saw (malformed): answered, then the stream closes."""
        headers: HeaderList = [
            (b"content-type", b"text/plain"),
            (b"content-length", b"%d" % len(message)),
            _SERVER,
        ]
        codec = self.conn.codec
        codec.send_response_head(self.stream_id, status, headers, end_stream=head_only)
        if not head_only:
            codec.send_data(self.stream_id, message, end_stream=True)
        self.conn.codec.reset(self.stream_id, 0)

    def send_continue(self) -> None:
        self.conn.codec.send_informational(self.stream_id, 100, [])

    def send_switching_protocols(self, headers: HeaderList) -> None:
        raise AssertionError("HTTP/2 streams never upgrade")  # exchanges start with upgrade off

    def send_response_head(
        self, ex: ExchangeView, status: int, headers: HeaderList, framing: str, length: bytes | None
    ) -> None:
        self.head_only = head_only = ex.req.method == b"HEAD" or framing == "none"
        fields = list(headers)
        if length is not None and (framing == "length" or ex.req.method == b"HEAD"):
            fields.append((b"content-length", length))
        fields.append(_SERVER)
        self.conn.codec.send_response_head(self.stream_id, status, fields, end_stream=head_only)

    def send_body(self, data: bytes) -> None:
        if not self.head_only and data:
            codec = self.conn.codec
            codec.send_data(self.stream_id, data)
            # While the socket takes nothing, what the windows admit waits in the codec's
            # output: stop this upstream too, or a client that opened large windows and never
            # reads would have every new stream's whole response buffered.
            if not self.upstream_paused and (
                self.conn.transport_paused or codec.buffered(self.stream_id) > HIGH_WATER
            ):
                self.pause_upstream()

    def end_response(self, trailers: HeaderList | None) -> None:
        if self.head_only:
            return
        codec = self.conn.codec
        if trailers:
            codec.send_trailers(self.stream_id, trailers)
        else:
            codec.send_data(self.stream_id, b"", end_stream=True)

    def flush(self) -> None:
        self.conn.flush_soon()

    def write(self, data: bytes) -> None:
        raise AssertionError("HTTP/2 streams carry no raw bytes")  # only tunnels write raw

    # -- response flow control -------------------------------------------------------------------
    def pause_upstream(self) -> None:
        self.upstream_paused = True
        ex = self.ex
        if ex is not None and ex.upstream is not None:
            ex.upstream.pause_reading()

    def window_opened(self) -> None:
        if not self.upstream_paused or self.conn.transport_paused:
            return
        if self.conn.codec.buffered(self.stream_id) <= HIGH_WATER // 2:
            self.upstream_paused = False
            ex = self.ex
            if ex is not None and ex.upstream is not None:
                ex.upstream.resume_reading()

    # -- completion --------------------------------------------------------------------------------
    def exchange_finished(self, ex: ClientExchange, abort: bool) -> None:
        self.conn.stream_finished(self, ex, abort)

    def internal_error(self, fault: Exception, where: str) -> None:
        """A bug in the gateway's own code hit this stream's exchange: logged and counted,
        then 500 (or the stream reset once its response started). Other streams go on."""
        report_internal_error(self.conn.runtime.metrics, fault, where)
        ex = self.ex
        try:
            if ex is not None and not ex.finished:
                ex.internal_error()
        except Exception as again:
            report_internal_error(self.conn.runtime.metrics, again, where)
            self.conn.codec.reset(self.stream_id, 2)
            self.conn.flush()

    def lost(self) -> None:
        """The client reset the stream, or the connection is gone."""
        self.reset_by_peer = True
        ex = self.ex
        if ex is not None and not ex.finished:
            ex.downstream_lost()

    def check_idle(self, now: float, timeout: float) -> None:
        ex = self.ex
        if ex is not None and not ex.finished and now - ex.activity >= timeout:
            ex.stream_idle()
