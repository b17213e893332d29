"""Data path: ``Exchange``, one request/response through the gateway, top to bottom.

route → (local reply | fault) → destination → host → pool → forward → stream back.
Everything is callback-driven: no task per request on the hot path. Retries re-enter host
selection with the hosts already tried excluded (``retry.py`` says when a retry is allowed).

Timeouts: the route ``timeout`` bounds the whole exchange (504 ``UT``); ``perTryTimeout``
bounds each attempt; without either, an attempt whose upstream stays silent for
``stream_idle_timeout`` (Envoy's 5 minutes) ends the same way.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway_core.proxy import messages
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.headers import new_request_id
from gateway_core.proxy.local_reply import DEFAULT_BODIES, redirect_location, render
from gateway_core.proxy.retry import (
    IDEMPOTENT,
    failure_retriable,
    retriable_status,
    retry_policy,
)
from gateway_core.proxy.targets import choose_target, sticky_host
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.routing.actions import (
    DirectResponseAction,
    HeaderList,
    RedirectAction,
    RouteAction,
    WeightedCluster,
)
from gateway_core.routing.matchers import RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.outlier import LocalOrigin
from gateway_core.upstream.pool import HostPool, Overflow

if TYPE_CHECKING:
    from gateway_core.proxy.downstream import DownstreamProtocol
    from gateway_core.upstream.cluster import Cluster

REPLAY_LIMIT = 65536
"""Request bodies up to this size are kept for retries; larger ones stream without a copy."""
BUFFER_HIGH = 65536
"""Body bytes held while the upstream connection is not ready; above it the client is paused."""


class Exchange:
    __slots__ = (
        "_activity",
        "_discarding",
        "_pending",
        "_pending_size",
        "_replay",
        "_replay_size",
        "_resp_framing",
        "_timer",
        "_try_timer",
        "attempts",
        "bytes_received",
        "bytes_sent",
        "client_keep_alive",
        "cluster",
        "cluster_map",
        "conn",
        "down",
        "entry",
        "finished",
        "flags",
        "head",
        "host",
        "match",
        "pool",
        "req",
        "req_framing",
        "request_done",
        "request_id",
        "response_started",
        "start",
        "status",
        "sticky_cookie",
        "target",
        "tried",
        "upgrade",
    )

    def __init__(
        self, down: DownstreamProtocol, req: RequestHead, req_framing: str, upgrade: bool
    ) -> None:
        self.down = down
        self.req = req
        self.req_framing = req_framing
        self.upgrade = upgrade
        self.client_keep_alive = True
        self.start = down.loop.time()
        self.request_done = req_framing == "none"
        self.finished = False
        self.response_started = False
        self.status = 0
        self.flags: list[ResponseFlag] = []
        self.entry: RouteEntry | None = None
        self.match: RequestMatch | None = None
        self.target: WeightedCluster | None = None
        self.cluster: Cluster | None = None
        self.cluster_map: dict[str, Cluster] = {}
        self.host: Host | None = None
        self.pool: HostPool | None = None
        self.conn: UpstreamConnection | None = None
        self.head = b""
        self.request_id = b""
        self.sticky_cookie: bytes | None = None
        self.attempts = 0
        self.tried: frozenset[tuple[str, int]] = frozenset()
        self.bytes_received = 0
        self.bytes_sent = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._replay: list[bytes] | None = [] if req_framing != "none" else None
        self._replay_size = 0
        self._discarding = False
        self._resp_framing = "length"
        self._timer: asyncio.TimerHandle | None = None
        self._try_timer: asyncio.TimerHandle | None = None
        self._activity = 0.0

    # -- routing ---------------------------------------------------------------------------
    def begin(self) -> None:
        down = self.down
        runtime = down.runtime
        if self.req.path == runtime.health_path:
            ok = runtime.ready and not runtime.draining
            self.local_reply(200 if ok else 503, None, b"ready\n" if ok else b"not ready\n")
            return
        # One read of the published state: a reload cannot change this request's view.
        self.cluster_map = runtime.clusters
        table = runtime.snapshot.route_tables.get(down.route_table)
        if table is None:
            self.local_reply(404, ResponseFlag.NO_ROUTE)
            return
        _, entry, match = table.route(self.req)
        if entry is None:
            self.local_reply(404, ResponseFlag.NO_ROUTE)
            return
        self.entry, self.match = entry, match
        action = entry.action
        if isinstance(action, RedirectAction):
            if action.https_redirect and down.trusts_https(self.req):
                self.local_reply(404, ResponseFlag.NO_ROUTE)
                return
            location = redirect_location(action, self.req, match)
            self.local_reply(action.code, None, b"", [(b"location", location)])
            return
        if isinstance(action, DirectResponseAction):
            self.local_reply(action.status, None, action.body)
            return
        fault = entry.fault
        if fault is not None:
            rng = runtime.rng
            if fault.abort_status and rng.random() * 100 < fault.abort_percent:
                self.local_reply(fault.abort_status, ResponseFlag.FAULT_INJECTED)
                return
            if fault.delay and rng.random() * 100 < fault.delay_percent:
                self.flags.append(ResponseFlag.DELAY_INJECTED)
                self._timer = down.loop.call_later(fault.delay, self._route_to_cluster, action)
                return
        self._route_to_cluster(action)

    def _route_to_cluster(self, action: RouteAction) -> None:
        if self.finished:
            return
        self._timer = None
        runtime = self.down.runtime
        target, self.sticky_cookie = choose_target(
            action, self.cluster_map, runtime.rng, runtime.sticky_key, self.req
        )
        cluster = self.cluster_map.get(target.cluster)
        if cluster is None:
            self.local_reply(503, ResponseFlag.NO_CLUSTER)
            return
        if cluster.active_requests >= cluster.spec.limits.max_requests:
            cluster.stats.overflow += 1
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)
            return
        self.target, self.cluster = target, cluster
        self.request_id = self.req.headers.get(b"x-request-id") or new_request_id()
        if (
            self.req.headers.get(b"expect", b"").lower() == b"100-continue"
            and not self.request_done
        ):
            self.down.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        timeout = self.entry.timeout if self.entry is not None else None
        if timeout:
            self._timer = self.down.loop.call_at(self.start + timeout, self._on_timeout)
        cluster.active_requests += 1
        self._attempt()

    def _attempt(self) -> None:
        cluster, entry, target = self.cluster, self.entry, self.target
        assert cluster is not None and entry is not None and target is not None
        self.attempts += 1
        ctx = LbContext(
            hash_key=cluster.hash_key(self.req, self.down.client_ip),
            attempt=self.attempts - 1,
            excluded=self.tried,
        )
        policy = cluster.spec.sticky
        if policy is not None and not policy.target_subset:
            host, cookie = sticky_host(cluster, policy, self.down.runtime.sticky_key, self.req, ctx)
            self.sticky_cookie = cookie or self.sticky_cookie
        else:
            host = cluster.choose_host(ctx)
        if host is None:
            self.local_reply(503, ResponseFlag.NO_HEALTHY_UPSTREAM)
            return
        self.host = host
        self.tried = self.tried | {host.key}
        down = self.down
        authority = messages.upstream_authority(self.req, entry)
        self.pool = cluster.pool_for(host, authority)
        self.head = messages.request_head(
            self.req,
            entry,
            target,
            self.match,
            authority=authority,
            client_ip=down.client_ip_bytes,
            trust_forwarded=down.trust_forwarded,
            request_id=self.request_id,
            framing=self.req_framing,
            upgrade=self.upgrade,
        )
        self._arm_try_timer()
        try:
            self.pool.acquire(self)
        except Overflow:
            cluster.stats.overflow += 1
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)

    # -- upstream connection (PoolWaiter) --------------------------------------------------
    def on_connection(self, conn: UpstreamConnection) -> None:
        if self.finished or self.pool is None or self.conn is not None:
            conn.pool.release(conn)
            return
        self.conn = conn
        assert self.host is not None
        self.host.active_requests += 1
        self.host.total_requests += 1
        conn.attach(self, self.head, self.req.method == b"HEAD")
        if self._pending:
            self._flush_pending(conn)
        if self.request_done and self.req_framing == "chunked":
            conn.write(b"0\r\n\r\n")

    def on_connect_failed(self, reason: str, timeout: bool) -> None:
        if self.finished:
            return
        assert self.cluster is not None and self.host is not None
        origin = LocalOrigin.TIMEOUT if timeout else LocalOrigin.CONNECT_FAILED
        self.cluster.record_local(self.host, origin)
        self.pool = None
        if self._may_retry("connect-failure", sent=False):
            self._retry()
            return
        body = b"upstream connect error or disconnect/reset before headers: %s\n" % reason.encode()
        self.local_reply(503, ResponseFlag.UPSTREAM_CONNECT_FAILURE, body)

    # -- request body ----------------------------------------------------------------------
    def on_request_body(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._replay is not None:
            self._replay_size += len(data)
            if self._replay_size <= REPLAY_LIMIT:
                self._replay.append(data)
            else:
                self._replay = None
        conn = self.conn
        if conn is not None and not self._discarding:
            _write_body(conn, data, self.req_framing)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > BUFFER_HIGH:
            self.down.pause_reading("body")

    def on_request_complete(self) -> None:
        self.request_done = True
        conn = self.conn
        if conn is not None and self.req_framing == "chunked" and not self._pending:
            conn.write(b"0\r\n\r\n")

    def _flush_pending(self, conn: UpstreamConnection) -> None:
        for chunk in self._pending:
            _write_body(conn, chunk, self.req_framing)
        self._pending.clear()
        self._pending_size = 0
        self.down.resume_reading("body")

    # -- response --------------------------------------------------------------------------
    def on_response_head(
        self, status: int, headers: HeaderList, framing: str, keep_alive: bool
    ) -> None:
        cluster, host = self.cluster, self.host
        assert cluster is not None and host is not None
        self._activity = self.down.loop.time()
        cluster.record_status(host, status)
        if (
            status >= 500
            and retriable_status(retry_policy(self.entry), status)
            and self._may_retry("status", sent=True)
        ):
            self._discarding = True  # drain this response, then try another host
            return
        self.status = status
        self.response_started = True
        down = self.down
        if status == 101 and self.upgrade:
            self._resp_framing = "raw"
            down.write(messages.switching_protocols(headers))
            return
        if self.upgrade:
            down.keep_alive = False  # a refused upgrade leaves the client's framing unknown
        chunked = framing in ("chunked", "eof") and down.http11
        if framing in ("chunked", "eof") and not down.http11:
            down.keep_alive = False  # an HTTP/1.0 client reads the body until close
        self._resp_framing = "chunked" if chunked else ("eof" if framing == "eof" else framing)
        extra = cluster.response_cookies(self.req, host)
        if self.sticky_cookie is not None:
            extra.append((b"set-cookie", self.sticky_cookie))
        close = not down.keep_alive or down.draining_now()
        if close:
            down.keep_alive = False
        down.write(
            messages.response_head(
                status,
                headers,
                framing,
                head_request=self.req.method == b"HEAD",
                entry=self.entry,
                target=self.target,
                extra=extra,
                chunked=chunked,
                close=close,
            )
        )

    def on_response_body(self, data: bytes) -> None:
        if self._discarding:
            return
        self._activity = self.down.loop.time()
        self.bytes_sent += len(data)
        if self._resp_framing == "chunked":
            self.down.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.down.write(data)

    def on_response_complete(self, reusable: bool) -> None:
        self._release_upstream(reusable)
        if self._discarding:
            self._discarding = False
            self._retry()
            return
        if self._resp_framing == "chunked":
            self.down.write(b"0\r\n\r\n")
        self.finish()

    def on_upstream_lost(self, exc: BaseException | None, response_started: bool) -> None:
        cluster, host = self.cluster, self.host
        self._release_upstream(False)
        if self.finished:
            return
        if cluster is not None and host is not None:
            cluster.record_local(host, LocalOrigin.RESET)
        if self.response_started:
            # Headers already went out: the client must see a truncated response, never a
            # fabricated complete one. (A closed WebSocket tunnel ends the same way.)
            if self._resp_framing != "raw":
                self.flags.append(ResponseFlag.UPSTREAM_REMOTE_RESET)
            self.down.keep_alive = False
            self.finish(abort=self._resp_framing != "raw")
            return
        if self._may_retry("reset", sent=True):
            self._retry()
            return
        self.local_reply(503, ResponseFlag.UPSTREAM_CONNECTION_TERMINATION)

    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None:
        from gateway_core.proxy.tunnel import start_tunnel

        self._cancel_try_timer()
        start_tunnel(self, conn, rest)

    def upstream_pause(self) -> None:
        self.down.pause_reading("upstream")

    def upstream_resume(self) -> None:
        self.down.resume_reading("upstream")

    def downstream_pause(self) -> None:
        if self.conn is not None:
            self.conn.pause_reading()

    def downstream_resume(self) -> None:
        if self.conn is not None:
            self.conn.resume_reading()

    # -- retries and timeouts ----------------------------------------------------------------
    def _may_retry(self, kind: str, *, sent: bool) -> bool:
        retry = retry_policy(self.entry)
        cluster = self.cluster
        if self.attempts > retry.attempts or cluster is None:
            return False
        if kind != "status" and not failure_retriable(retry, kind):
            return False
        if sent and not self._replayable():
            return False
        return cluster.active_retries < cluster.spec.limits.max_retries

    def _replayable(self) -> bool:
        if self.req.method not in IDEMPOTENT:
            return False
        return self.req_framing == "none" or (self.request_done and self._replay is not None)

    def _retry(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        cluster.stats.retries += 1
        cluster.active_retries += 1
        try:
            if self._replay:
                self._pending = list(self._replay)
                self._pending_size = self._replay_size
            self._attempt()
        finally:
            cluster.active_retries -= 1

    def _arm_try_timer(self) -> None:
        self._cancel_try_timer()
        loop = self.down.loop
        per_try = retry_policy(self.entry).per_try_timeout
        self._activity = loop.time()
        if per_try:
            self._try_timer = loop.call_later(per_try, self._on_try_timeout)
        else:
            idle = self.down.runtime.settings.stream_idle_timeout
            self._try_timer = loop.call_later(idle, self._on_idle_check)

    def _cancel_try_timer(self) -> None:
        if self._try_timer is not None:
            self._try_timer.cancel()
            self._try_timer = None

    def _on_idle_check(self) -> None:
        """Re-armed while the upstream shows activity; fires as a timeout once it is silent."""
        self._try_timer = None
        if self.finished:
            return
        loop = self.down.loop
        idle = self.down.runtime.settings.stream_idle_timeout
        quiet = loop.time() - self._activity
        if quiet < idle:
            self._try_timer = loop.call_later(idle - quiet, self._on_idle_check)
            return
        self._on_try_timeout()

    def _on_try_timeout(self) -> None:
        self._try_timer = None
        if self.finished or (self.response_started and self._resp_framing == "raw"):
            return
        cluster, host = self.cluster, self.host
        conn, self.conn = self.conn, None
        if conn is not None:
            if host is not None:
                host.active_requests -= 1
            conn.abort()
        elif self.pool is not None:
            self.pool.cancel(self)
        if cluster is not None and host is not None:
            cluster.record_local(host, LocalOrigin.TIMEOUT)
        if not self.response_started and self._may_retry("timeout", sent=True):
            self._discarding = False
            self._retry()
            return
        self._timed_out()

    def _on_timeout(self) -> None:
        self._timer = None
        if self.finished:
            return
        if self.conn is not None:
            self.conn.abort()
        if self.cluster is not None and self.host is not None:
            self.cluster.record_local(self.host, LocalOrigin.TIMEOUT)
        self._timed_out()

    def _timed_out(self) -> None:
        if self.response_started:
            self.flags.append(ResponseFlag.UPSTREAM_TIMEOUT)
            self.down.keep_alive = False
            self.finish(abort=True)
        else:
            self.local_reply(504, ResponseFlag.UPSTREAM_TIMEOUT)

    # -- completion ----------------------------------------------------------------------------
    def _release_upstream(self, reusable: bool) -> None:
        self._cancel_try_timer()
        conn, self.conn = self.conn, None
        if conn is None:
            if self.pool is not None:
                self.pool.cancel(self)
            return
        if self.host is not None:
            self.host.active_requests -= 1
        if not reusable and not conn.closed:
            conn.abort()

    def local_reply(
        self,
        status: int,
        flag: ResponseFlag | None,
        body: bytes | None = None,
        extra: HeaderList | None = None,
    ) -> None:
        if self.finished:
            return
        self._release_upstream(False)
        if flag is not None:
            self.flags.append(flag)
            if body is None:
                body = DEFAULT_BODIES.get(flag, b"")
        body = body or b""
        self.status = status
        self.response_started = True
        down = self.down
        if not self.request_done:
            down.keep_alive = False  # the rest of the request body is never read
        close = not down.keep_alive or down.draining_now()
        head_only = self.req.method == b"HEAD"
        down.write(render(status, body, extra=extra, close=close, head_only=head_only))
        self.bytes_sent += len(body)
        self.finish()

    def finish(self, abort: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release_upstream(False)
        if self.cluster is not None and self.target is not None:
            self.cluster.active_requests -= 1
        self.down.exchange_finished(self, abort)

    def downstream_lost(self) -> None:
        if self.finished:
            return
        self.flags.append(ResponseFlag.DOWNSTREAM_CONNECTION_TERMINATION)
        self.finish(abort=True)


def _write_body(conn: UpstreamConnection, data: bytes, framing: str) -> None:
    if framing == "chunked":
        conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
    else:
        conn.write(data)
