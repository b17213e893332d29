"""Data path: ``Exchange``, the router: one request/response through the gateway, top to bottom.

route → the route's filter chain (``filters.py``: CORS, fault, then the action: a local answer,
or the router) → destination → attempt → stream back.
Everything is callback-driven: no task per request on the hot path. Each attempt is an
``UpstreamRequest``; a retry abandons the current one (its connection can no longer call back)
and starts a new one after a jittered back-off, on a host not tried yet when there is one.

Timeouts (Envoy): the route ``timeout`` and ``perTryTimeout`` run from the moment the whole
request was received and cover the whole response (504 ``UT``, or a truncated response once
it started). ``stream_idle_timeout`` (checked by the connection against ``activity``) ends an
exchange quiet in both directions: 408 (``SI``) while the client still owes body bytes, else
like a per-try timeout.

The exchange's fields are declared in ``ExchangeState`` (``exchange_state.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from gateway_core.proxy import cors, grpc, messages
from gateway_core.proxy.exchange_state import ExchangeState
from gateway_core.proxy.filters import run_chain, run_gateway_chain
from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.headers import new_request_id
from gateway_core.proxy.local_reply import DEFAULT_BODIES
from gateway_core.proxy.mirror import send_mirrors
from gateway_core.proxy.retry import IDEMPOTENT, retriable_response
from gateway_core.proxy.targets import choose_host, choose_target
from gateway_core.proxy.upstream_request import BUFFER_HIGH, FAILURES, UpstreamRequest
from gateway_core.routing.actions import DEFAULT_RETRY, HeaderList, RouteAction
from gateway_core.routing.matchers import RequestMatch
from gateway_core.routing.route_table import RouteEntry
from gateway_core.snapshot import UpstreamProtocol
from gateway_core.upstream.outlier import LocalOrigin
from gateway_core.upstream.pool import Overflow


class Exchange(ExchangeState):
    __slots__ = ()

    # -- routing ---------------------------------------------------------------------------
    def begin(self) -> None:
        down = self.down
        runtime = down.runtime
        req = self.req
        if req.path == runtime.health_path:
            ok = runtime.ready and not runtime.draining
            self.local_reply(200 if ok else 503, None, b"ready\n" if ok else b"not ready\n")
            return
        if runtime.tracer is not None:  # the span covers local answers too, as Envoy's does
            self.request_id = req.headers.get(b"x-request-id") or new_request_id()
            trace = self.trace = runtime.tracer.start(req.headers, self.request_id)
            self.trace_id, self.span_id = trace.trace_id, trace.span_id
        # One read of the published state: a reload cannot change this request's view.
        self.cluster_map = runtime.clusters
        snapshot = runtime.snapshot
        if snapshot.gateway_filters and run_gateway_chain(self, snapshot.gateway_filters):
            return
        table = snapshot.route_tables.get(down.route_table)
        entry: RouteEntry | None = None
        match: RequestMatch | None = None
        if table is not None:
            entry, match = table.route_entry(req, self.auth)
        if entry is None:
            self.local_reply(404, ResponseFlag.NO_ROUTE)
            return
        self.entry, self.match = entry, match
        run_chain(self)  # CORS, fault, ... then the route's action (proxy/filters.py)

    def continue_chain(self, index: int) -> None:
        """Resume the route's filter chain at element ``index`` (after a fault delay)."""
        self.wait = None
        run_chain(self, index)

    def route_to(self, action: RouteAction) -> None:
        """Choose the destination and start the first attempt."""
        self.wait = None
        down = self.down
        runtime = down.runtime
        req, entry = self.req, self.entry
        assert entry is not None
        targets = action.clusters
        if len(targets) == 1:
            target = targets[0]
        else:
            target, self.sticky_cookie = choose_target(
                action, self.cluster_map, runtime.rng, runtime.sticky_key, req
            )
        cluster = self.cluster_map.get(target.cluster)
        if cluster is None:
            self.local_reply(503, ResponseFlag.NO_CLUSTER)
            return
        if not cluster.resources.requests.try_inc():
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)
            return
        self.target, self.cluster = target, cluster
        retries = entry.retries
        self.retry.policy = DEFAULT_RETRY if retries is None else retries
        self.request_id = self.request_id or req.headers.get(b"x-request-id") or new_request_id()
        rewrite = entry.rewrite
        if rewrite is not None and rewrite.authority is not None:
            self.authority = rewrite.authority
        else:
            self.authority = req.authority
        protocol = cluster.spec.protocol
        if protocol is UpstreamProtocol.HTTP1 or self.upgrade:
            self.h2_up = False
        else:  # HTTP/2, or the client's protocol (``useClientProtocol``)
            self.h2_up = protocol is UpstreamProtocol.HTTP2 or down.http2
        if not self.h2_up:  # the HTTP/2 connection builds its own head (``request_fields``)
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
                hops=self.hops,
                trace=self.trace,
            )
        if self.request_done:
            if entry.timeout or entry.mirrors or b"grpc-timeout" in req.headers:
                self._request_complete()
        elif req.headers.get(b"expect", b"").lower() == b"100-continue":
            down.send_continue()
        self._attempt()

    def _attempt(self) -> None:
        retry, cluster = self.retry, self.cluster
        retry.timer = None
        assert cluster is not None
        retry.attempts += 1
        down, req = self.down, self.req
        if cluster.spec.lb.hash_key is None:
            key = self.hash_cookie = None
        else:
            key, self.hash_cookie = cluster.hash_key(
                req, lambda: down.origin_ip(req), down.peer_address, down.local_address
            )
        ctx = retry.lb_context(key)
        if cluster.spec.sticky is None:
            host, cookie = cluster.choose_host(ctx), None
        else:
            host, cookie = choose_host(cluster, req, down.client_ip, down.runtime.sticky_key, ctx)
        if host is None:
            self.local_reply(503, ResponseFlag.NO_HEALTHY_UPSTREAM)
            return
        self.host = host
        if cookie:
            self.sticky_cookie = cookie
        retry.tried = retry.tried | {host.key}
        pool = cluster.pool_for(host, self.authority, self.h2_up)
        if retry.held:
            ureq = UpstreamRequest(self, host, pool, *retry.take_held())
        else:
            ureq = UpstreamRequest(self, host, pool, [], 0)
        self.upstream = ureq
        if self.request_done and retry.policy.per_try_timeout:
            ureq.arm_try_timer(retry.policy.per_try_timeout)
        try:
            pool.acquire(ureq)
        except Overflow:  # counted by the pool on the cluster's ResourceManager
            self.local_reply(503, ResponseFlag.UPSTREAM_OVERFLOW)

    # -- request body ----------------------------------------------------------------------
    def on_request_body(self, data: bytes) -> None:
        self.bytes_received += len(data)
        self.activity = self.down.loop.time()
        self.retry.keep(data)
        if self.upstream is not None:
            self.upstream.send(data)
        elif not self.finished and self.retry.hold(data) > BUFFER_HIGH:
            self.down.pause_reading("body")

    def on_request_complete(self) -> None:
        if self.request_done:
            return  # a request without a body: ``route_to`` already completed it
        self.request_done = True
        if self.finished or self.target is None:
            return
        self._request_complete()
        if self.upstream is not None:
            self.upstream.end()
            self.upstream.arm_try_timer(self.retry.policy.per_try_timeout)

    def _request_complete(self) -> None:
        entry = self.entry
        assert entry is not None
        timeout = entry.timeout
        if grpc.is_grpc(self.req):
            # grpc-timeout is honoured, bounded by the route's timeout (Istio sets Envoy's
            # grpc_timeout_header_max to the route timeout).
            wanted = grpc.parse_timeout(self.req.headers.get(b"grpc-timeout"))
            if wanted is not None and (not timeout or wanted < timeout):
                timeout = wanted
        if timeout:
            self._deadline = self.down.loop.call_later(timeout, self.guarded, self._on_deadline)
        replay = self.retry.replay
        if entry.mirrors and (replay is not None or self.req_framing == "none"):
            send_mirrors(self, b"".join(replay or ()))

    # -- attempt outcomes (called by the current UpstreamRequest only) ----------------------
    def attempt_response_head(
        self, ureq: UpstreamRequest, status: int, headers: HeaderList, framing: str
    ) -> None:
        cluster, host, down = self.cluster, ureq.host, self.down
        assert cluster is not None
        self.activity = self.response_at = down.loop.time()
        cluster.record_status(host, status)
        if status == 101 and not self.upgrade:
            ureq.abandon()
            self.attempt_failed(ureq, "protocol-error")
            return
        if retriable_response(self.retry.policy, status, headers) and self._may_retry(
            "status", sent=True
        ):
            return  # the response is drained, then ``attempt_complete`` retries
        self.status = status
        if framing == "none":  # a trailers-only gRPC response carries its status in the head
            self.grpc_status = grpc.status_field(headers)
        if self.hash_cookie is None and self.sticky_cookie is None and self.cors_origin is None:
            ureq.start_response(status, headers, framing, [])
        else:
            ureq.start_response(status, headers, framing, self._response_extra([]))
        self.response_started = True  # only now: a bug above is still answered 500
        if status == 101:  # a WebSocket tunnel opens (Istio's TCP metrics)
            metrics = down.runtime.metrics.istio
            metrics.tunnel_series(metrics.destination(cluster.spec, host)).opened += 1

    def attempt_complete(self, ureq: UpstreamRequest) -> None:
        self.upstream = None
        if ureq.trailers:
            self.grpc_status = grpc.status_field(ureq.trailers)
        if not ureq.streaming:
            self._retry()
            return
        self.finish()

    def attempt_failed(self, ureq: UpstreamRequest, kind: str, reason: bytes = b"") -> None:
        """``ureq`` (already stopped) ended without a complete response; ``kind`` is one of
        ``FAILURES``. Retry it when allowed, else answer, or cut a response under way."""
        self.upstream = None
        origin, status, flag, retry_kind = FAILURES[kind]
        assert self.cluster is not None
        self.cluster.record_local(ureq.host, origin)
        if ureq.resp_framing == "raw":
            self.finish()  # a WebSocket tunnel ended from the upstream side
        elif not self.response_started and self._may_retry(retry_kind, sent=ureq.sent):
            self._retry(None if ureq.sent else ureq.take_unsent())
        else:
            if kind == "reset" and self.response_started:
                flag = ResponseFlag.UPSTREAM_REMOTE_RESET
            prefix = b"upstream connect error or disconnect/reset before headers: "
            self._fail(status, flag, prefix + reason + b"\n" if reason else None)

    # -- retries -----------------------------------------------------------------------------
    def _may_retry(self, kind: str, *, sent: bool) -> bool:
        if self.cluster is None or self.finished:
            return False
        # A stream the host refused was never processed: any method may go again, if its
        # body can be sent again.
        replayable = (self.req.method in IDEMPOTENT or kind == "refused-stream") and (
            self.req_framing == "none" or (self.request_done and self.retry.replay is not None)
        )
        budget = self.cluster.resources.retries
        return self.retry.allows(kind, sent=sent, replayable=replayable, budget=budget)

    def _retry(self, unsent: list[bytes] | None = None) -> None:
        assert self.cluster is not None
        self.retry.rewind(unsent)
        down = self.down
        attempt = partial(self.guarded, self._attempt)
        self.retry.schedule(self.cluster, down.loop, down.runtime.rng, attempt)

    # -- timeouts ----------------------------------------------------------------------------
    def _on_deadline(self) -> None:
        self._deadline = None
        if self.finished:
            return
        ureq = self.upstream
        if ureq is not None and self.cluster is not None:
            self.cluster.record_local(ureq.host, LocalOrigin.TIMEOUT)
        self._fail(504, ResponseFlag.UPSTREAM_TIMEOUT)

    def stream_idle(self) -> None:
        """The connection saw no activity either way for ``stream_idle_timeout``: 408 while
        the client still owes body bytes, else the attempt times out. Tunnels may idle."""
        ureq = self.upstream
        if self.finished or (ureq is not None and ureq.resp_framing == "raw"):
            return
        if not self.request_done:
            self._fail(408, ResponseFlag.STREAM_IDLE_TIMEOUT)
        elif ureq is not None:
            ureq.abandon()
            self.attempt_failed(ureq, "timeout")
        else:
            self._fail(504, ResponseFlag.UPSTREAM_TIMEOUT)

    # -- completion ----------------------------------------------------------------------------
    def _response_extra(self, extra: HeaderList) -> HeaderList:
        if self.hash_cookie is not None:
            extra.append((b"set-cookie", self.hash_cookie))
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
        *,
        grpc_status: int | None = None,
    ) -> None:
        if self.finished:
            return
        if self.upstream is not None:
            self.upstream.abandon()
            self.upstream = None
        if flag is not None:
            self.flags += (flag,)
            if body is None:
                body = DEFAULT_BODIES.get(flag, b"")
        body = body or b""
        if (status >= 400 or grpc_status is not None) and grpc.is_grpc(self.req):
            # A trailers-only gRPC error: gRPC clients read grpc-status, not HTTP statuses.
            extra = (extra or []) + grpc.trailers_only(status, flag, body, grpc_status)
            self.grpc_status = grpc.status_field(extra)
            status, body = 200, b""
        self.status = status
        self.response_started = True
        self.down.send_local_reply(self, status, body, self._response_extra(extra or []))
        self.bytes_sent += len(body)
        self.finish()

    def reject(self, status: int, message: bytes) -> None:
        """The client's request turned out malformed (its body); the connection closes."""
        self.down.keep_alive = False
        self._fail(status, ResponseFlag.DOWNSTREAM_PROTOCOL_ERROR, message)

    def _fail(self, status: int, flag: ResponseFlag, body: bytes | None = None) -> None:
        """Answer ``status`` locally, or, when the response head already went out, cut the
        response: the client must see it truncated, never completed by a fake."""
        if not self.response_started:
            self.local_reply(status, flag, body)
        elif not self.finished:
            self.flags += (flag,)
            self.down.keep_alive = False
            self.finish(abort=True)

    def finish(self, abort: bool = False) -> None:
        if self.finished:
            return
        self.finished = True
        self.stop_timers()
        if self.upstream is not None:
            self.upstream.abandon()
            self.upstream = None
        if self.cluster is not None:
            self.cluster.resources.requests.dec()
        self.down.exchange_finished(self, abort)

    def guarded(self, step: Callable[..., None], *args: object) -> None:
        """Run a step the event loop calls back (a timer): a bug in it ends up in the
        connection's ``internal_error``, never in the event loop's log."""
        try:
            step(*args)
        except Exception as fault:
            self.down.internal_error(fault, "request path")

    def internal_error(self) -> None:
        """A bug in the gateway's own code hit this exchange (the connection's
        ``internal_error`` logged and counted it): 500, or the response cut when it already
        started. The attempt is dropped without blaming its host; nothing is retried."""
        if self.finished:
            return
        self.down.keep_alive = False
        if self.response_started:
            self.finish(abort=True)
        else:
            self.local_reply(500, None, b"internal error\n")

    def downstream_lost(self) -> None:
        if self.finished:
            return
        self.flags += (ResponseFlag.DOWNSTREAM_CONNECTION_TERMINATION,)
        self.finish(abort=True)
