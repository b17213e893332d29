"""Data path: ``ExchangeState``, the fields of one request/response through the gateway.

``Exchange`` (``exchange.py``) is the behaviour: routing, attempts, retries and completion. The
fields live here, in a base class compiled with it (mypyc lays a subclass's attributes out after
its base's, so access costs the same), to keep each module a readable size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.retry import RetryState
from gateway_core.proxy.trace_context import TraceContext
from gateway_core.proxy.upstream_request import UpstreamRequest
from gateway_core.routing.actions import HeaderList, WeightedCluster
from gateway_core.routing.matchers import RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry
from gateway_core.security.principal import RequestAuth
from gateway_core.upstream.host import Host

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import Downstream
    from gateway_core.upstream.cluster import Cluster

_NO_CLUSTERS: Mapping[str, Cluster] = MappingProxyType({})


class ExchangeState:
    """The state of one request/response (slots, initial values) and the small accessors
    on it; ``Exchange`` adds the behaviour."""

    __slots__ = (
        "_deadline",
        "activity",
        "auth",
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
        "grpc_status",
        "h2_up",
        "hash_cookie",
        "head",
        "hops",
        "host",
        "match",
        "req",
        "req_framing",
        "req_trailers",
        "request_done",
        "request_id",
        "response_at",
        "response_started",
        "retry",
        "span_id",
        "start",
        "status",
        "sticky_cookie",
        "target",
        "trace",
        "trace_id",
        "upgrade",
        "upstream",
        "wait",
    )

    entry: RouteEntry | None
    match: RequestMatch | None
    target: WeightedCluster | None
    cluster: Cluster | None
    cluster_map: Mapping[str, Cluster]
    host: Host | None
    upstream: UpstreamRequest | None
    sticky_cookie: bytes | None
    hash_cookie: bytes | None
    cors_origin: bytes | None
    auth: RequestAuth | None
    grpc_status: bytes | None
    """The response's ``grpc-status`` (trailers, or the head of a trailers-only response)."""
    flags: tuple[ResponseFlag, ...]
    _deadline: asyncio.TimerHandle | None
    wait: asyncio.TimerHandle | None
    req_trailers: HeaderList | None
    trace: TraceContext | None

    def __init__(self, down: Downstream, req: RequestHead, req_framing: str, upgrade: bool) -> None:
        # Chained assignments: one of these is built for every request.
        self.down = down
        self.req = req
        self.req_framing = req_framing
        self.upgrade = upgrade
        self.client_keep_alive = True
        self.start = self.activity = down.loop.time()
        self.request_done = req_framing == "none"
        self.finished = self.response_started = self.h2_up = False
        self.status = self.bytes_received = self.bytes_sent = 0
        self.response_at = 0.0
        self.flags = ()
        self.cluster_map = _NO_CLUSTERS
        self.entry = self.match = self.target = self.cluster = self.host = self.upstream = None
        self.sticky_cookie = self.hash_cookie = self.cors_origin = self._deadline = None
        self.wait = self.req_trailers = self.auth = self.grpc_status = self.trace = None
        self.head = self.authority = self.request_id = self.trace_id = self.hops = self.span_id = (
            b""
        )
        self.retry = RetryState(req_framing != "none")

    @property
    def attempts(self) -> int:
        return self.retry.attempts

    @property
    def protocol(self) -> str:
        """The client's protocol, as Envoy's %PROTOCOL% prints it."""
        return "HTTP/2" if self.down.http2 else "HTTP/1.1"

    def stop_timers(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.wait is not None:
            self.wait.cancel()
            self.wait = None
        self.retry.close()
