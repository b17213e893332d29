"""Data path: request mirroring (Istio ``mirror``/``mirrors``, Envoy request shadowing).

Fire and forget: once the client's request is complete, each mirror policy (drawn against its
``percentage``) sends a copy to a host of the mirror cluster with Host ``<host>-shadow``. The
copy carries the body only when the gateway still holds all of it (bodies up to the 64 KiB
replay buffer); larger bodies, and WebSocket upgrades, are not mirrored. The mirror's response
is read and discarded; it never delays or changes the client's response, and a mirror that does
not answer within the route timeout (or the stream idle timeout) is abandoned.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway_core.proxy import messages
from gateway_core.proxy.errors import report_internal_error
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.routing.actions import HeaderList
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.pool import HostPool, Overflow

if TYPE_CHECKING:
    from gateway_core.observability.metrics import GatewayMetrics
    from gateway_core.proxy.interfaces import ExchangeView
    from gateway_core.upstream.cluster import Cluster
    from gateway_core.upstream.host import Host


class MirrorRequest:
    """One shadow request: a PoolWaiter and ResponseSink that only counts the outcome."""

    __slots__ = (
        "alive", "cluster", "conn", "data", "head_request", "host", "metrics", "pool", "timer",
    )  # fmt: skip

    def __init__(
        self,
        cluster: Cluster,
        host: Host,
        pool: HostPool[UpstreamConnection],
        data: bytes,
        head_request: bool,
        metrics: GatewayMetrics,
    ) -> None:
        self.metrics = metrics
        self.cluster = cluster
        self.host = host
        self.pool = pool
        self.data = data
        self.head_request = head_request
        self.conn: UpstreamConnection | None = None
        self.alive = True
        self.timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.timer = loop.call_later(timeout, self._expire)
        try:
            self.pool.acquire(self)
        except Overflow:  # counted by the pool on the cluster's ResourceManager
            self._done()

    # -- PoolWaiter --------------------------------------------------------------------------
    def on_connection(self, conn: UpstreamConnection) -> None:
        if not self.alive:
            conn.pool.release(conn)
            return
        self.conn = conn
        self.host.active_requests += 1
        self.host.total_requests += 1
        conn.attach(self, self.data, self.head_request, True)

    def on_connect_failed(self, reason: str, timeout: bool) -> None:
        self._done()

    # -- ResponseSink ------------------------------------------------------------------------
    def on_response_head(
        self, status: int, headers: HeaderList, framing: str, keep_alive: bool
    ) -> None:
        self.cluster.record_status(self.host, status)

    def on_response_body(self, data: bytes) -> None:
        return

    def on_response_trailers(self, trailers: list[tuple[bytes, bytes]]) -> None:
        return  # a mirror's response is discarded

    def on_response_complete(self, reusable: bool) -> None:
        self._release()
        self._done()

    def on_upstream_lost(self, protocol_error: bool, refused: bool = False) -> None:
        self._release()
        self._done()

    def on_internal_error(self, fault: Exception) -> None:
        report_internal_error(self.metrics, fault, "mirror")
        self._release()
        self._done()

    def on_upstream_upgrade(self, conn: UpstreamConnection, rest: bytes) -> None:
        conn.detach()
        self._release()
        self._done()

    def flush(self) -> None:
        return

    def upstream_pause(self) -> None:
        return

    def upstream_resume(self) -> None:
        return

    # -- teardown ----------------------------------------------------------------------------
    def _release(self) -> None:
        if self.conn is not None:
            self.conn = None
            self.host.active_requests -= 1

    def _expire(self) -> None:
        self.timer = None
        if not self.alive:
            return
        conn = self.conn
        if conn is not None:
            self._release()
            conn.detach()
        else:
            self.pool.cancel(self)
        self._done()

    def _done(self) -> None:
        self.alive = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def send_mirrors(ex: ExchangeView, body: bytes) -> None:
    """Shadow the (complete, buffered) request of ``ex`` to its route's mirror clusters."""
    entry = ex.entry
    if entry is None or ex.upgrade:
        return
    down = ex.down
    runtime = down.runtime
    authority = messages.shadow_authority(ex.authority)
    timeout = entry.timeout or runtime.settings.stream_idle_timeout
    for spec in entry.mirrors:
        if spec.percent < 100.0 and runtime.rng.random() * 100.0 >= spec.percent:
            continue
        cluster = ex.cluster_map.get(spec.cluster)
        if cluster is None:
            continue
        host = cluster.choose_host(LbContext())
        if host is None:
            continue
        head = messages.request_head(
            ex.req,
            entry,
            None,
            ex.match,
            authority=authority,
            client_ip=down.client_ip_bytes,
            trust_forwarded=down.trust_forwarded,
            request_id=ex.request_id,
            framing=ex.req_framing,
            upgrade=False,
            body_length=len(body),
            hops=ex.hops,
            trace=ex.trace,
        )
        pool = cluster.pool_for(host, authority)
        head_request = ex.req.method == b"HEAD"
        mirror = MirrorRequest(cluster, host, pool, head + body, head_request, runtime.metrics)
        mirror.start(down.loop, timeout)
