"""Data path: ``UpstreamRequest``, one attempt of an exchange on one upstream connection.

An ``Exchange`` (the router) creates one per attempt. It waits for a pooled connection, writes
the request head and body (holding body bytes while it connects, pausing the client when they
pile up), and streams the response back to the client once the exchange accepts its head.
A retry abandons the attempt and creates a new one; ``abandon`` detaches the connection first,
so nothing an abandoned attempt's connection does later can reach the exchange.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from gateway_core.proxy import messages
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.interfaces import ExchangeView
from gateway_core.proxy.tunnel import ClientTunnelBuffer
from gateway_core.proxy.upstream_conn import ResponseSink, UpstreamConnection
from gateway_core.routing.actions import HeaderList
from gateway_core.upstream.outlier import LocalOrigin

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import Downstream
    from gateway_core.upstream.host import Host
    from gateway_core.upstream.pool import HostPool


class UpstreamStream(Protocol):
    """What an attempt drives once its request started: an HTTP/1.1 connection
    (``UpstreamConnection``) or one HTTP/2 stream (``H2UpstreamStream``)."""

    @property
    def closed(self) -> bool: ...
    def send_body(self, data: bytes) -> None: ...
    def end_body(self, trailers: HeaderList | None) -> None: ...
    def cancel(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class UpstreamLink(Protocol):
    """A pooled connection as an attempt receives it (either protocol)."""

    @property
    def pool(self) -> Any: ...
    def pause_reading(self) -> None: ...
    def open_stream(
        self, sink: ResponseSink, ex: ExchangeView, expect_no_body: bool, complete: bool
    ) -> UpstreamStream: ...


BUFFER_HIGH = 65536
"""Body bytes held while the connection is not ready; above this the client is paused."""

_UF = ResponseFlag.UPSTREAM_CONNECT_FAILURE
FAILURES: dict[str, tuple[LocalOrigin, int, ResponseFlag, str]] = {
    # How an attempt can fail: (outlier-detection origin, the client's status and response
    # flag when it is not retried, and the retryOn condition that allows a retry).
    "connect-failure": (LocalOrigin.CONNECT_FAILED, 503, _UF, "connect-failure"),
    "connect-timeout": (LocalOrigin.TIMEOUT, 503, _UF, "connect-failure"),
    "reset": (LocalOrigin.RESET, 503, ResponseFlag.UPSTREAM_CONNECTION_TERMINATION, "reset"),
    "protocol-error": (LocalOrigin.RESET, 502, ResponseFlag.UPSTREAM_PROTOCOL_ERROR, "reset"),
    "refused-stream": (
        LocalOrigin.RESET,
        503,
        ResponseFlag.UPSTREAM_REMOTE_RESET,
        "refused-stream",
    ),
    "timeout": (LocalOrigin.TIMEOUT, 504, ResponseFlag.UPSTREAM_TIMEOUT, "timeout"),
}


class AttemptOwner(ExchangeView, Protocol):
    """The exchange an attempt belongs to, as the attempt sees it (``Exchange`` implements
    it): the attempt reports its outcomes here, and only while it is the current one."""

    activity: float
    bytes_sent: int

    @property
    def req_trailers(self) -> HeaderList | None: ...
    def attempt_response_head(
        self, ureq: UpstreamRequest, status: int, headers: HeaderList, framing: str
    ) -> None: ...
    def attempt_complete(self, ureq: UpstreamRequest) -> None: ...
    def attempt_failed(self, ureq: UpstreamRequest, kind: str, reason: bytes = b"") -> None: ...
    def guarded(self, step: Callable[..., None], *args: object) -> None: ...
    def stop_timers(self) -> None: ...


class UpstreamRequest:
    __slots__ = (
        "alive",
        "conn",
        "down",
        "ex",
        "framing",
        "host",
        "pending",
        "pending_size",
        "pool",
        "resp_framing",
        "sent",
        "streaming",
        "trailers",
        "try_timer",
    )

    def __init__(
        self,
        ex: AttemptOwner,
        host: Host,
        pool: HostPool[UpstreamConnection],
        pending: list[bytes],
        size: int,
    ) -> None:
        self.ex = ex
        self.down: Downstream = ex.down
        self.host = host
        self.pool = pool
        self.framing = ex.req_framing
        self.conn: UpstreamStream | None = None
        self.pending = pending
        self.pending_size = size
        self.alive = True
        self.sent = False
        """Some request byte went out: from then on only a replayable request may retry."""
        self.streaming = False
        """The exchange accepted this attempt's response head; body bytes go to the client."""
        self.resp_framing = "length"
        self.trailers: HeaderList | None = None
        self.try_timer: asyncio.TimerHandle | None = None

    def arm_try_timer(self, seconds: float | None) -> None:
        """``perTryTimeout``: from the end of the request to the end of the response."""
        if seconds and self.alive:
            self.try_timer = self.down.loop.call_later(
                seconds, self.ex.guarded, self._on_try_timeout
            )

    def _on_try_timeout(self) -> None:
        self.try_timer = None
        if self.alive:
            self.abandon()
            self.ex.attempt_failed(self, "timeout")

    # -- connection (PoolWaiter) -----------------------------------------------------------
    def on_connection(self, conn: UpstreamLink) -> None:
        try:
            self._on_connection(conn)
        except Exception as fault:  # called from the pool's connect task too
            self._release(False)
            self.down.internal_error(fault, "request path")

    def _on_connection(self, conn: UpstreamLink) -> None:
        if not self.alive or self.conn is not None:
            conn.pool.release(conn)
            return
        self.conn = cast(UpstreamStream, conn)  # until ``open_stream`` returns the stream
        if self.down.write_paused:
            conn.pause_reading()  # the client is not reading: neither does this response
        ex = self.ex
        host = self.host
        host.active_requests += 1
        host.total_requests += 1
        self.sent = True
        head_only = ex.req.method == b"HEAD"
        if ex.request_done and self.framing == "none" and not self.pending:
            self.conn = conn.open_stream(self, ex, head_only, True)  # the head is all
            return
        stream = self.conn = conn.open_stream(self, ex, head_only, False)
        if self.pending:
            self._send_pending()
        if ex.request_done:
            stream.end_body(ex.req_trailers)

    def on_connect_failed(self, reason: str, timeout: bool) -> None:
        if self.alive:
            self._stop()
            kind = "connect-timeout" if timeout else "connect-failure"
            self.ex.guarded(self.ex.attempt_failed, self, kind, reason.encode())

    # -- request body ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            conn.send_body(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > BUFFER_HIGH:
            self.down.pause_reading("body")

    def end(self) -> None:
        """The client's request body is complete."""
        if self.conn is not None:
            self.conn.end_body(self.ex.req_trailers)

    def _send_pending(self) -> None:
        pending, self.pending = self.pending, []
        self.pending_size = 0
        for chunk in pending:
            self.send(chunk)
        self.down.resume_reading("body")

    def take_unsent(self) -> list[bytes]:
        """Body bytes that never left (a failed connect): the next attempt sends them."""
        pending, self.pending = self.pending, []
        self.pending_size = 0
        return pending

    # -- response (ResponseSink) -------------------------------------------------------------
    def on_response_head(
        self, status: int, headers: HeaderList, framing: str, keep_alive: bool
    ) -> None:
        if self.alive:
            self.ex.attempt_response_head(self, status, headers, framing)

    def start_response(
        self, status: int, headers: HeaderList, framing: str, extra: HeaderList
    ) -> None:
        """The exchange accepted this response: hand its head to the client's codec and
        stream its body."""
        self.streaming = True
        down = self.down
        if status == 101:
            self.resp_framing = "raw"
            down.send_switching_protocols(headers)
            return
        ex = self.ex
        self.resp_framing = framing
        fields, length = messages.response_headers(
            headers, entry=ex.entry, target=ex.target, extra=extra
        )
        down.send_response_head(ex, status, fields, framing, length)

    def on_response_body(self, data: bytes) -> None:
        if not self.streaming:
            return  # a response being drained before a retry
        ex = self.ex
        ex.bytes_sent += len(data)
        ex.activity = self.down.loop.time()
        if self.resp_framing == "raw":
            self.down.write(data)
        else:
            self.down.send_body(data)

    def on_response_trailers(self, trailers: HeaderList) -> None:
        if self.streaming:
            self.trailers = trailers

    def flush(self) -> None:
        """End of one upstream read: one write to the client (head and body together)."""
        self.down.flush()

    def on_response_complete(self, reusable: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:  # ``_release``, inlined for the common end of an attempt
            self.host.active_requests -= 1
            if not reusable and not conn.closed:
                conn.cancel()
        if self.alive:
            self.alive = False  # ``_stop``, inlined for the common end of an attempt
            if self.try_timer is not None:
                self.try_timer.cancel()
                self.try_timer = None
            down = self.down
            if self.streaming and self.resp_framing != "raw":
                down.end_response(self.trailers)
            down.flush()
            self.ex.attempt_complete(self)

    def on_upstream_lost(self, protocol_error: bool, refused: bool = False) -> None:
        """The connection (HTTP/1.1) or the stream (HTTP/2) ended before the response did.
        ``refused``: an HTTP/2 host refused or never processed the stream (REFUSED_STREAM,
        or beyond its GOAWAY's last stream id)."""
        self._release(False)
        self.flush()  # a truncated body still reaches the client before the cut
        if self.alive:
            self._stop()
            kind = "protocol-error" if protocol_error else "refused-stream" if refused else "reset"
            self.ex.attempt_failed(self, kind)

    def on_internal_error(self, fault: Exception) -> None:
        """A bug in the gateway's own code interrupted this attempt's response (the connection
        was dropped, its host not blamed): the client connection maps it."""
        self._release(False)
        self._stop()
        self.down.internal_error(fault, "response path")

    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None:
        if not self.alive:
            conn.detach()
            return
        ex = self.ex
        ex.stop_timers()  # a WebSocket may stay open and idle as long as it likes
        # The upstream switched protocols: relay both directions from now on.
        buffer = self.down.tunnel
        if not isinstance(buffer, ClientTunnelBuffer):
            # The client's parser never saw its upgrade complete; never tunnel blindly.
            self.abandon()
            ex.attempt_failed(self, "protocol-error")
            return
        if rest:
            self.on_response_body(rest)
        buffer.open(conn)

    # -- flow control ------------------------------------------------------------------------
    def upstream_pause(self) -> None:
        self.down.pause_reading("upstream")

    def upstream_resume(self) -> None:
        self.down.resume_reading("upstream")

    def pause_reading(self) -> None:
        if self.conn is not None:
            self.conn.pause_reading()

    def resume_reading(self) -> None:
        if self.conn is not None:
            self.conn.resume_reading()

    # -- teardown ----------------------------------------------------------------------------
    def _release(self, reusable: bool) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        self.host.active_requests -= 1
        if not reusable and not conn.closed:
            conn.cancel()

    def _stop(self) -> None:
        self.alive = False
        if self.try_timer is not None:
            self.try_timer.cancel()
            self.try_timer = None

    def abandon(self) -> None:
        """Stop this attempt: no callback of it reaches the exchange after this returns."""
        self._stop()
        if self.conn is not None:
            self._release(False)
        else:
            self.pool.cancel(self)
        if self.pending:
            self.down.resume_reading("body")
