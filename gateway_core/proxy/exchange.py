"""Data path: ``Exchange``, one request/response through the gateway, top to bottom.

route → (local reply | fault) → cluster → load balancer → host → pool → forward → stream back.
Everything is callback-driven: no task per request on the hot path. Retries re-enter host
selection with the hosts already tried excluded; a request is retried after it was sent only
when its method is idempotent and its body is still in memory (RFC 9110 §9.2.2).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.headers import (
    new_request_id,
    response_headers,
    serialize_request,
    upstream_request_headers,
)
from gateway_core.proxy.local_reply import DEFAULT_BODIES, redirect_location, render
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.routing.actions import (
    DEFAULT_RETRY,
    DirectResponseAction,
    HeaderList,
    RedirectAction,
    RetrySpec,
    RouteAction,
    WeightedCluster,
)
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.outlier import LocalOrigin
from gateway_core.upstream.pool import HostPool, Overflow

if TYPE_CHECKING:
    from gateway_core.proxy.downstream import DownstreamProtocol
    from gateway_core.upstream.cluster import Cluster

IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
REPLAY_LIMIT = 65536
"""Request bodies up to this size are kept for retries; larger ones stream without a copy."""
BUFFER_HIGH = 65536
"""Body bytes held while the upstream connection is not ready; above it the client is paused."""


class Exchange:
    __slots__ = (
        "_deadline",
        "_discarding",
        "_pending",
        "_pending_size",
        "_replay",
        "_replay_size",
        "_resp_framing",
        "_timer",
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
        self._deadline = 0.0

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
            rng = down.runtime.rng
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
        target = action.pick(
            runtime.rng.randrange(action.total_weight) if action.total_weight else 0
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
            self._deadline = self.start + timeout
            self._timer = self.down.loop.call_at(self._deadline, self._on_timeout)
        cluster.active_requests += 1
        self._attempt()

    def _attempt(self) -> None:
        cluster = self.cluster
        assert cluster is not None and self.target is not None
        self.attempts += 1
        ctx = LbContext(
            hash_key=cluster.hash_key(self.req, self.down.client_ip),
            attempt=self.attempts - 1,
            excluded=self.tried,
        )
        host = cluster.choose_host(ctx)
        if host is None:
            self.local_reply(503, ResponseFlag.NO_HEALTHY_UPSTREAM)
            return
        self.host = host
        self.tried = self.tried | {host.key}
        authority = self._upstream_authority()
        self.pool = cluster.pool_for(host, authority)
        self.head = self._request_head(authority)
        try:
            self.pool.acquire(self)
        except Overflow:
            cluster.stats.overflow += 1
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)

    def _upstream_authority(self) -> bytes:
        rewrite = self.entry.rewrite if self.entry is not None else None
        if rewrite is not None and rewrite.authority is not None:
            return rewrite.authority
        return self.req.authority

    def _request_head(self, authority: bytes) -> bytes:
        req, down, entry, target = self.req, self.down, self.entry, self.target
        assert entry is not None and target is not None
        headers = upstream_request_headers(
            req.raw_headers,
            authority=authority,
            client_ip=down.client_ip_bytes,
            scheme=req.scheme,
            original_authority=req.authority,
            trust_forwarded=down.trust_forwarded,
            request_id=self.request_id,
        )
        if self.upgrade:
            headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
        elif self.req_framing == "chunked":
            headers.append((b"transfer-encoding", b"chunked"))
        elif self.req_framing == "length" or b"content-length" in req.headers:
            headers.append((b"content-length", req.headers.get(b"content-length", b"0")))
        if entry.request_headers is not None:
            headers = entry.request_headers.apply(headers)
        if target.request_headers is not None:
            headers = target.request_headers.apply(headers)
        return serialize_request(req.method, self._upstream_target(), headers)

    def _upstream_target(self) -> bytes:
        req, entry = self.req, self.entry
        rewrite = entry.rewrite if entry is not None else None
        path = req.path
        if rewrite is not None:
            if rewrite.regex is not None:
                path = rewrite.regex.sub(rewrite.regex_substitution, path)
            elif rewrite.uri is not None:
                m = self.match
                if m is not None and isinstance(m.uri, PrefixMatcher):
                    path = rewrite.uri + path[len(m.uri.value) :]
                else:
                    path = rewrite.uri
        return path + b"?" + req.query if req.query else path

    # -- upstream connection (PoolWaiter) --------------------------------------------------
    def on_connection(self, conn: UpstreamConnection) -> None:
        if self.finished or self.pool is None:
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
        self.cluster.record_local(
            self.host, LocalOrigin.TIMEOUT if timeout else LocalOrigin.CONNECT_FAILED
        )
        if self._may_retry(b"connect-failure", sent=False):
            self._retry()
            return
        body = (
            b"upstream connect error or disconnect/reset before headers: " + reason.encode() + b"\n"
        )
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
        cluster.record_status(host, status)
        if (
            status >= 500
            and self._retriable_status(status)
            and self._may_retry(b"status", sent=True)
        ):
            self._discarding = True
            return
        self.status = status
        self.response_started = True
        if status == 101 and self.upgrade:
            self._resp_framing = "raw"
            self.down.write(_switching_protocols(headers))
            return
        if self.upgrade:
            self.down.keep_alive = (
                False  # the client's parser state is unknown after a refused upgrade
            )
        self._resp_framing = framing
        self.down.write(self._response_head(status, headers, framing))

    def _response_head(self, status: int, raw: HeaderList, framing: str) -> bytes:
        headers = response_headers(raw)
        entry, target = self.entry, self.target
        if target is not None and target.response_headers is not None:
            headers = target.response_headers.apply(headers)
        if entry is not None and entry.response_headers is not None:
            headers = entry.response_headers.apply(headers)
        cluster = self.cluster
        if cluster is not None and self.host is not None:
            headers.extend(cluster.response_cookies(self.req, self.host))
        down = self.down
        parts = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status) or b"Unknown")]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if framing == "length" or (framing == "none" and self.req.method == b"HEAD"):
            for name, value in raw:
                if name == b"content-length":
                    parts += (b"content-length: ", value, b"\r\n")
                    break
        elif framing in ("chunked", "eof"):
            if down.http11:
                parts.append(b"transfer-encoding: chunked\r\n")
                self._resp_framing = "chunked"
            else:
                down.keep_alive = False
                self._resp_framing = "eof"
        parts.append(b"server: multicluster-gateway\r\n")
        if not down.keep_alive or down.draining_now():
            down.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def on_response_body(self, data: bytes) -> None:
        if self._discarding:
            return
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
            self.finish(abort=True)
            return
        if self._may_retry(b"reset", sent=True):
            self._retry()
            return
        self.local_reply(503, ResponseFlag.UPSTREAM_CONNECTION_TERMINATION)

    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None:
        from gateway_core.proxy.tunnel import start_tunnel

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
    def _retry_policy(self) -> RetrySpec:
        return (
            self.entry.retries if self.entry is not None and self.entry.retries else DEFAULT_RETRY
        )

    def _retriable_status(self, status: int) -> bool:
        retry = self._retry_policy()
        on = retry.retry_on
        return (
            ("retriable-status-codes" in on and status in retry.retriable_status_codes)
            or "5xx" in on
            or (status in (502, 503, 504) and "gateway-error" in on)
        )

    def _may_retry(self, kind: bytes, *, sent: bool) -> bool:
        retry = self._retry_policy()
        if self.attempts > retry.attempts or self.cluster is None:
            return False
        if kind == b"connect-failure" and "connect-failure" not in retry.retry_on:
            return False
        if kind == b"reset" and not ({"reset", "5xx", "gateway-error"} & retry.retry_on):
            return False
        if sent and not self._replayable():
            return False
        return self.cluster.active_retries < self.cluster.spec.limits.max_retries

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

    def _on_timeout(self) -> None:
        self._timer = None
        if self.finished:
            return
        if self.conn is not None:
            self.conn.abort()
        if self.cluster is not None and self.host is not None:
            self.cluster.record_local(self.host, LocalOrigin.TIMEOUT)
        if self.response_started:
            self.flags.append(ResponseFlag.UPSTREAM_TIMEOUT)
            self.down.keep_alive = False
            self.finish(abort=True)
        else:
            self.local_reply(504, ResponseFlag.UPSTREAM_TIMEOUT)

    # -- completion ----------------------------------------------------------------------------
    def _release_upstream(self, reusable: bool) -> None:
        conn, self.conn = self.conn, None
        if self.pool is not None and conn is None:
            self.pool.cancel(self)
        if conn is not None and self.host is not None:
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
        self.status = status
        self.response_started = True
        down = self.down
        if not self.request_done:
            down.keep_alive = False  # the rest of the request body is never read
        head_only = self.req.method == b"HEAD"
        down.write(
            render(
                status,
                body or b"",
                extra=extra,
                close=not down.keep_alive or down.draining_now(),
                head_only=head_only,
            )
        )
        self.bytes_sent += len(body or b"")
        self.finish()

    def finish(self, abort: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.conn is not None:
            self._release_upstream(False)
        elif self.pool is not None:
            self.pool.cancel(self)
        if self.cluster is not None and self.target is not None:
            self.cluster.active_requests -= 1
        self.down.exchange_finished(self, abort)

    def downstream_lost(self) -> None:
        if self.finished:
            return
        self.flags.append(ResponseFlag.DOWNSTREAM_CONNECTION_TERMINATION)
        self.finish(abort=True)


def _switching_protocols(headers: HeaderList) -> bytes:
    parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    for name, value in headers:
        if name not in (b"content-length", b"transfer-encoding"):
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _write_body(conn: UpstreamConnection, data: bytes, framing: str) -> None:
    if framing == "chunked":
        conn.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
    else:
        conn.write(data)


_REASONS: dict[int, bytes] = {}


def _init_reasons() -> None:
    from http import HTTPStatus

    for s in HTTPStatus:
        _REASONS[s.value] = s.phrase.encode()


_init_reasons()
