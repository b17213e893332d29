"""Data path: ``UpstreamRequest``, one attempt of an exchange on one upstream connection.

An ``Exchange`` (the router) creates one per attempt. It waits for a pooled connection, writes
the request head and body (holding body bytes while it connects, pausing the client when they
pile up), and streams the response back to the client once the exchange accepts its head.
A retry abandons the attempt and creates a new one; ``abandon`` detaches the connection first,
so nothing an abandoned attempt's connection does later can reach the exchange.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.routing.actions import HeaderList

if TYPE_CHECKING:
    from gateway_core.proxy.downstream import DownstreamProtocol
    from gateway_core.proxy.exchange import Exchange
    from gateway_core.upstream.host import Host
    from gateway_core.upstream.pool import HostPool

BUFFER_HIGH = 65536
"""Body bytes held while the connection is not ready; above this the client is paused."""


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
    )

    def __init__(
        self, ex: Exchange, host: Host, pool: HostPool, pending: list[bytes], size: int
    ) -> None:
        self.ex = ex
        self.down: DownstreamProtocol = ex.down
        self.host = host
        self.pool = pool
        self.framing = ex.req_framing
        self.conn: UpstreamConnection | None = None
        self.pending = pending
        self.pending_size = size
        self.alive = True
        self.sent = False
        """Some request byte went out: from then on only a replayable request may retry."""
        self.streaming = False
        """The exchange accepted this attempt's response head; body bytes go to the client."""
        self.resp_framing = "length"

    # -- connection (PoolWaiter) -----------------------------------------------------------
    def on_connection(self, conn: UpstreamConnection) -> None:
        if not self.alive or self.conn is not None:
            conn.pool.release(conn)
            return
        self.conn = conn
        ex = self.ex
        self.host.active_requests += 1
        self.host.total_requests += 1
        done = ex.request_done
        conn.attach(self, ex.head, ex.req.method == b"HEAD", done and not self.pending)
        self.sent = True
        if self.pending:
            self._flush(conn)
        if done:
            self._end(conn)

    def on_connect_failed(self, reason: str, timeout: bool) -> None:
        if self.alive:
            self.alive = False
            self.ex.attempt_connect_failed(self, reason, timeout)

    # -- request body ----------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            if self.framing == "chunked":
                conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            else:
                conn.write(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > BUFFER_HIGH:
            self.down.pause_reading("body")

    def end(self) -> None:
        """The client's request body is complete."""
        if self.conn is not None:
            self._end(self.conn)

    def _end(self, conn: UpstreamConnection) -> None:
        if self.framing == "chunked":
            conn.write(b"0\r\n\r\n")
        conn.end_request()

    def _flush(self, conn: UpstreamConnection) -> None:
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

    def on_response_body(self, data: bytes) -> None:
        if not self.streaming:
            return  # a response being drained before a retry
        ex = self.ex
        ex.bytes_sent += len(data)
        ex.activity = self.down.loop.time()
        if self.resp_framing == "chunked":
            self.down.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.down.write(data)

    def on_response_complete(self, reusable: bool) -> None:
        self._release(reusable)
        if self.alive:
            self.alive = False
            self.ex.attempt_complete(self)

    def on_upstream_lost(self, protocol_error: bool) -> None:
        self._release(False)
        if self.alive:
            self.alive = False
            self.ex.attempt_reset(self, protocol_error)

    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None:
        if self.alive:
            self.ex.attempt_upgraded(self, conn, rest)
        else:
            conn.detach()

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
            conn.detach()

    def abandon(self) -> None:
        """Stop this attempt: no callback of it reaches the exchange after this returns."""
        self.alive = False
        if self.conn is not None:
            self._release(False)
        else:
            self.pool.cancel(self)
        if self.pending:
            self.down.resume_reading("body")
