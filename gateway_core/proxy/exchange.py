"""Data path: ``Exchange``, the router: one request/response through the gateway, top to bottom.

route → (local reply | CORS preflight | fault) → destination → attempt → stream back.
Everything is callback-driven: no task per request on the hot path. Each attempt is an
``UpstreamRequest``; a retry abandons the current one (its connection can no longer call back)
and starts a new one after a jittered back-off, on a host not tried yet when there is one.

Timeouts (Envoy): the route ``timeout`` and ``perTryTimeout`` run from the moment the whole
request was received and cover the whole response (504 ``UT``, or a truncated response once
it started). ``stream_idle_timeout`` ends an exchange that shows no activity in either
direction: 408 (``SI``) while the client still owes body bytes, else like a per-try timeout.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway_core.proxy import cors, messages
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.headers import new_request_id
from gateway_core.proxy.local_reply import DEFAULT_BODIES, redirect_location, render
from gateway_core.proxy.mirror import send_mirrors
from gateway_core.proxy.retry import (
    IDEMPOTENT,
    backoff,
    may_retry,
    retriable_status,
    retry_policy,
)
from gateway_core.proxy.targets import choose_target, sticky_host
from gateway_core.proxy.upstream_request import BUFFER_HIGH, UpstreamRequest
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
from gateway_core.upstream.pool import Overflow

if TYPE_CHECKING:
    from gateway_core.proxy.downstream import DownstreamProtocol
    from gateway_core.proxy.upstream_conn import UpstreamConnection
    from gateway_core.upstream.cluster import Cluster

REPLAY_LIMIT = 65536
"""Request bodies up to this size are kept for retries and mirrors; larger ones stream."""


class Exchange:
    __slots__ = (
        "_carry",
        "_carry_size",
        "_deadline",
        "_idle",
        "_replay",
        "_replay_size",
        "_retrying",
        "_try_timer",
        "_wait",
        "activity",
        "attempts",
        "authority",
        "bytes_received",
        "bytes_sent",
        "client_keep_alive",
        "cluster",
        "cluster_map",
        "cors_origin",
        "down",
        "entry",
        "finished",
        "flags",
        "head",
        "host",
        "match",
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
        "upstream",
    )

    def __init__(
        self, down: DownstreamProtocol, req: RequestHead, req_framing: str, upgrade: bool
    ) -> None:
        self.down = down
        self.req = req
        self.req_framing = req_framing
        self.upgrade = upgrade
        self.client_keep_alive = True
        self.start = self.activity = down.loop.time()
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
        self.upstream: UpstreamRequest | None = None
        self.head = self.authority = self.request_id = b""
        self.sticky_cookie: bytes | None = None
        self.cors_origin: bytes | None = None
        self.attempts = self.bytes_received = self.bytes_sent = 0
        self.tried: frozenset[tuple[str, int]] = frozenset()
        self._replay: list[bytes] | None = [] if req_framing != "none" else None
        self._replay_size = self._carry_size = 0
        self._carry: list[bytes] = []
        self._retrying = False
        self._deadline: asyncio.TimerHandle | None = None
        self._wait: asyncio.TimerHandle | None = None
        self._try_timer: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None

    # -- routing ---------------------------------------------------------------------------
    def begin(self) -> None:
        down = self.down
        runtime = down.runtime
        req = self.req
        if req.path == runtime.health_path:
            ok = runtime.ready and not runtime.draining
            self.local_reply(200 if ok else 503, None, b"ready\n" if ok else b"not ready\n")
            return
        # One read of the published state: a reload cannot change this request's view.
        self.cluster_map = runtime.clusters
        table = runtime.snapshot.route_tables.get(down.route_table)
        entry: RouteEntry | None = None
        match: RequestMatch | None = None
        if table is not None:
            _, entry, match = table.route(req)
        if entry is None:
            self.local_reply(404, ResponseFlag.NO_ROUTE)
            return
        self.entry, self.match = entry, match
        if entry.cors is not None:
            self.cors_origin = cors.allowed_origin(entry.cors, req)
            if self.cors_origin is not None and cors.is_preflight(req):
                headers = cors.preflight_headers(entry.cors, self.cors_origin)
                self.cors_origin = None
                self.local_reply(200, None, b"", headers)
                return
        action = entry.action
        if isinstance(action, RedirectAction):
            if action.https_redirect and down.trusts_https(req):
                self.local_reply(404, ResponseFlag.NO_ROUTE)
                return
            location = redirect_location(action, req, match)
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
                self._wait = down.loop.call_later(fault.delay, self._route, action)
                return
        self._route(action)

    def _route(self, action: RouteAction) -> None:
        self._wait = None
        down = self.down
        runtime = down.runtime
        req, entry = self.req, self.entry
        assert entry is not None
        target, self.sticky_cookie = choose_target(
            action, self.cluster_map, runtime.rng, runtime.sticky_key, req
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
        cluster.active_requests += 1
        self.request_id = req.headers.get(b"x-request-id") or new_request_id()
        self.authority = messages.upstream_authority(req, entry)
        self.head = messages.request_head(
            req,
            entry,
            target,
            self.match,
            authority=self.authority,
            client_ip=down.client_ip_bytes,
            trust_forwarded=down.trust_forwarded,
            request_id=self.request_id,
            framing=self.req_framing,
            upgrade=self.upgrade,
        )
        if not self.request_done and req.headers.get(b"expect", b"").lower() == b"100-continue":
            down.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._idle = down.loop.call_later(runtime.settings.stream_idle_timeout, self._on_idle)
        if self.request_done:
            self._request_complete()
        self._attempt()

    def _attempt(self) -> None:
        self._wait = None
        cluster, target = self.cluster, self.target
        assert cluster is not None and target is not None
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
        body, self._carry = self._carry, []
        pool = cluster.pool_for(host, self.authority)
        ureq = UpstreamRequest(self, host, pool, body, self._carry_size)
        self._carry_size = 0
        self.upstream = ureq
        if self.request_done:
            self._arm_try_timer()
        try:
            pool.acquire(ureq)
        except Overflow:
            cluster.stats.overflow += 1
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)

    # -- request body ----------------------------------------------------------------------
    def on_request_body(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.activity = self.down.loop.time()
        if self._replay is not None:
            self._replay_size += len(data)
            if self._replay_size <= REPLAY_LIMIT:
                self._replay.append(data)
            else:
                self._replay = None
        if self.upstream is not None:
            self.upstream.send(data)
        elif not self.finished:
            # Between attempts (fault delay, retry back-off): held for the next attempt.
            self._carry.append(data)
            self._carry_size += len(data)
            if self._carry_size > BUFFER_HIGH:
                self.down.pause_reading("body")

    def on_request_complete(self) -> None:
        self.request_done = True
        if self.finished or self.target is None:
            return
        self._request_complete()
        if self.upstream is not None:
            self.upstream.end()
            self._arm_try_timer()

    def _request_complete(self) -> None:
        entry = self.entry
        assert entry is not None
        if entry.timeout:
            self._deadline = self.down.loop.call_later(entry.timeout, self._on_deadline)
        if entry.mirrors and (self._replay is not None or self.req_framing == "none"):
            send_mirrors(self, b"".join(self._replay or ()))

    # -- attempt outcomes (called by the current UpstreamRequest only) ----------------------
    def attempt_connect_failed(self, ureq: UpstreamRequest, reason: str, timeout: bool) -> None:
        self._end_attempt()
        assert self.cluster is not None
        self.cluster.record_local(
            ureq.host, LocalOrigin.TIMEOUT if timeout else LocalOrigin.CONNECT_FAILED
        )
        self._carry = ureq.take_unsent() + self._carry
        if self._may_retry("connect-failure", sent=False):
            self._retry()
            return
        body = b"upstream connect error or disconnect/reset before headers: %s\n" % reason.encode()
        self.local_reply(503, ResponseFlag.UPSTREAM_CONNECT_FAILURE, body)

    def attempt_response_head(
        self, ureq: UpstreamRequest, status: int, headers: HeaderList, framing: str
    ) -> None:
        cluster, host, down = self.cluster, ureq.host, self.down
        assert cluster is not None
        self.activity = down.loop.time()
        cluster.record_status(host, status)
        if status == 101 and not self.upgrade:
            ureq.abandon()
            self.attempt_reset(ureq, True)
            return
        if (
            status >= 500
            and retriable_status(retry_policy(self.entry), status)
            and self._may_retry("status", sent=True)
        ):
            return  # the response is drained, then ``attempt_complete`` retries
        self.status = status
        self.response_started = ureq.streaming = True
        if status == 101:
            ureq.resp_framing = "raw"
            down.write(messages.switching_protocols(headers))
            return
        if self.upgrade:
            down.keep_alive = False  # a refused upgrade leaves the client's framing unknown
        chunked = framing in ("chunked", "eof") and down.http11
        if framing == "eof" and not down.http11:
            down.keep_alive = False  # an HTTP/1.0 client reads the body until close
        ureq.resp_framing = "chunked" if chunked else framing
        close = not down.keep_alive or down.draining_now()
        down.keep_alive = not close
        down.write(
            messages.response_head(
                status,
                headers,
                framing,
                head_request=self.req.method == b"HEAD",
                entry=self.entry,
                target=self.target,
                extra=self._response_extra(cluster.response_cookies(self.req, host)),
                chunked=chunked,
                close=close,
            )
        )

    def attempt_complete(self, ureq: UpstreamRequest) -> None:
        self._end_attempt()
        if not ureq.streaming:
            self._carry = list(self._replay or ())
            self._retry()
            return
        if ureq.resp_framing == "chunked":
            self.down.write(b"0\r\n\r\n")
        self.finish()

    def attempt_reset(self, ureq: UpstreamRequest, protocol_error: bool) -> None:
        self._end_attempt()
        assert self.cluster is not None
        self.cluster.record_local(ureq.host, LocalOrigin.RESET)
        flag = (
            ResponseFlag.UPSTREAM_PROTOCOL_ERROR
            if protocol_error
            else ResponseFlag.UPSTREAM_CONNECTION_TERMINATION
        )
        if self.response_started:
            if ureq.resp_framing == "raw":
                self.finish()  # a WebSocket tunnel ended from the upstream side
                return
            # Headers already went out: the client sees a truncated response, never a fake.
            self.flags.append(flag if protocol_error else ResponseFlag.UPSTREAM_REMOTE_RESET)
            self.down.keep_alive = False
            self.finish(abort=True)
            return
        if self._may_retry("reset", sent=ureq.sent):
            self._carry = list(self._replay or ())
            self._retry()
            return
        self.local_reply(502 if protocol_error else 503, flag)

    def attempt_upgraded(
        self, ureq: UpstreamRequest, conn: UpstreamConnection, rest: bytes
    ) -> None:
        from gateway_core.proxy.tunnel import start_tunnel

        self._cancel_timers()
        start_tunnel(self, ureq, conn, rest)

    def _end_attempt(self) -> None:
        self.upstream = None
        if self._try_timer is not None:
            self._try_timer.cancel()
            self._try_timer = None

    # -- retries -----------------------------------------------------------------------------
    def _may_retry(self, kind: str, *, sent: bool) -> bool:
        cluster = self.cluster
        if cluster is None or self.finished:
            return False
        retries_in_use = cluster.active_retries - (1 if self._retrying else 0)
        return may_retry(
            retry_policy(self.entry),
            kind,
            attempts=self.attempts,
            replayable=self._replayable(),
            sent=sent,
            retries_in_use=retries_in_use,
            max_retries=cluster.spec.limits.max_retries,
        )

    def _replayable(self) -> bool:
        if self.req.method not in IDEMPOTENT:
            return False
        return self.req_framing == "none" or (self.request_done and self._replay is not None)

    def _retry(self) -> None:
        cluster = self.cluster
        assert cluster is not None
        cluster.stats.retries += 1
        if not self._retrying:
            self._retrying = True
            cluster.active_retries += 1
        self._carry_size = sum(map(len, self._carry))
        rng = self.down.runtime.rng
        delay = backoff(retry_policy(self.entry), self.attempts - 1, rng)
        self._wait = self.down.loop.call_later(delay, self._attempt)

    # -- timeouts ----------------------------------------------------------------------------
    def _arm_try_timer(self) -> None:
        per_try = retry_policy(self.entry).per_try_timeout
        if per_try:
            self._try_timer = self.down.loop.call_later(per_try, self._on_try_timeout)

    def _on_try_timeout(self) -> None:
        self._try_timer = None
        ureq = self.upstream
        if self.finished or ureq is None:
            return
        ureq.abandon()
        self._end_attempt()
        assert self.cluster is not None
        self.cluster.record_local(ureq.host, LocalOrigin.TIMEOUT)
        if not self.response_started and self._may_retry("timeout", sent=True):
            self._carry = list(self._replay or ())
            self._retry()
            return
        self._timed_out(ResponseFlag.UPSTREAM_TIMEOUT)

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.finished:
            return
        ureq = self.upstream
        if ureq is not None and self.cluster is not None:
            self.cluster.record_local(ureq.host, LocalOrigin.TIMEOUT)
        self._timed_out(ResponseFlag.UPSTREAM_TIMEOUT)

    def _on_idle(self) -> None:
        """Re-armed while there is activity; fires once both directions were quiet."""
        self._idle = None
        if self.finished:
            return
        loop = self.down.loop
        idle = self.down.runtime.settings.stream_idle_timeout
        quiet = loop.time() - self.activity
        if quiet < idle:
            self._idle = loop.call_later(idle - quiet, self._on_idle)
        elif not self.request_done:
            self._timed_out(ResponseFlag.STREAM_IDLE_TIMEOUT, 408)
        elif self.upstream is not None:
            self._on_try_timeout()
        else:
            self._timed_out(ResponseFlag.UPSTREAM_TIMEOUT)

    def _timed_out(self, flag: ResponseFlag, status: int = 504) -> None:
        if self.response_started:
            self.flags.append(flag)
            self.down.keep_alive = False
            self.finish(abort=True)
        else:
            self.local_reply(status, flag)

    def _cancel_timers(self) -> None:
        for timer in (self._deadline, self._wait, self._try_timer, self._idle):
            if timer is not None:
                timer.cancel()
        self._deadline = self._wait = self._try_timer = self._idle = None

    # -- completion ----------------------------------------------------------------------------
    def _response_extra(self, extra: HeaderList) -> HeaderList:
        if self.sticky_cookie is not None:
            extra.append((b"set-cookie", self.sticky_cookie))
        if self.cors_origin is not None and self.entry is not None and self.entry.cors:
            extra += cors.response_headers(self.entry.cors, self.cors_origin)
        return extra

    def local_reply(
        self,
        status: int,
        flag: ResponseFlag | None,
        body: bytes | None = None,
        extra: HeaderList | None = None,
    ) -> None:
        if self.finished:
            return
        if self.upstream is not None:
            self.upstream.abandon()
            self._end_attempt()
        if flag is not None:
            self.flags.append(flag)
            if body is None:
                body = DEFAULT_BODIES.get(flag, b"")
        body = body or b""
        self.status = status
        self.response_started = True
        down = self.down
        if not self.request_done or self.upgrade:
            down.keep_alive = False  # unread body bytes, or a client expecting a tunnel
        close = not down.keep_alive or down.draining_now()
        extra = self._response_extra(extra or [])
        head_only = self.req.method == b"HEAD"
        down.write(render(status, body, extra=extra, close=close, head_only=head_only))
        self.bytes_sent += len(body)
        self.finish()

    def reject(self, status: int, message: bytes) -> None:
        """The client's request turned out malformed (its body): 400 if nothing was answered
        yet, else the response is cut; the connection closes either way."""
        if self.finished:
            return
        self.down.keep_alive = False
        if not self.response_started:
            self.local_reply(status, ResponseFlag.DOWNSTREAM_PROTOCOL_ERROR, message)
            return
        self.flags.append(ResponseFlag.DOWNSTREAM_PROTOCOL_ERROR)
        self.finish(abort=True)

    def finish(self, abort: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_timers()
        if self.upstream is not None:
            self.upstream.abandon()
            self.upstream = None
        cluster = self.cluster
        if cluster is not None:
            cluster.active_requests -= 1
            if self._retrying:
                cluster.active_retries -= 1
        self.down.exchange_finished(self, abort)

    def downstream_lost(self) -> None:
        if self.finished:
            return
        self.flags.append(ResponseFlag.DOWNSTREAM_CONNECTION_TERMINATION)
        self.finish(abort=True)

    def downstream_pause(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def downstream_resume(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()
