"""Data path runtime: ``Cluster``, the live side of one ``ClusterSpec``.

It owns the hosts (from static endpoints or DNS), the priority load balancer, the connection
pools (``ClusterPools``), the circuit breakers (``ResourceManager``), outlier detection and active
health checks. The data path calls ``choose_host``, ``pool_for``, ``record_status`` and
``record_local``; everything that changes host health runs on the control side and ends in
``on_host_change``. Connections are opened by the injected ``Connector`` with the TLS context
the control path published in the cluster's ``ClientTlsSlot``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway_core.routing.request import RequestHead
from gateway_core.snapshot import ClusterSpec, Discovery, HashKeyKind, UpstreamProtocol
from gateway_core.tls.common import TlsConfigError
from gateway_core.upstream.client_tls import (
    H2_ALPN,
    ClientContextStore,
    upstream_server_hostname,
)
from gateway_core.upstream.connector import Connector
from gateway_core.upstream.discovery import DnsDiscovery, DnsResolver, hosts_from_static
from gateway_core.upstream.health_check import HealthChecker
from gateway_core.upstream.host import Host, HostKey
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.hash_key import (
    compute_hash_key,
    generate_cookie,
    should_generate_cookie,
)
from gateway_core.upstream.lb.priority import PriorityLoadBalancer
from gateway_core.upstream.lb.tables import Offload
from gateway_core.upstream.outlier import HostMonitor, LocalOrigin, OutlierDetector
from gateway_core.upstream.pool import HostPool
from gateway_core.upstream.pools import ClusterPools
from gateway_core.upstream.resources import ResourceManager
from gateway_core.upstream.shared_hosts import OutcomeSink, attach_reporters
from gateway_core.utils.clock import Clock, Scheduler

_log = logging.getLogger("gateway.cluster")


@dataclass(slots=True)
class ClusterStats:
    """Counters the metrics endpoint reads (Envoy ``cluster.<name>.upstream_*``); the breaker
    counters and their overflow statistics are on ``Cluster.resources``."""

    rq_2xx: int = 0
    rq_3xx: int = 0
    rq_4xx: int = 0
    rq_5xx: int = 0
    retries: int = 0
    connect_fail: int = 0
    connect_timeout: int = 0
    resets: int = 0
    extra_data: int = 0
    """Connections closed because the upstream sent bytes beyond its response."""


class Cluster:
    def __init__(
        self,
        spec: ClusterSpec,
        *,
        rng: random.Random,
        clock: Clock,
        resolver: DnsResolver,
        connector: Connector[Any],
        tls_store: ClientContextStore,
        h2_connector: Connector[Any] | None = None,
        existing: Mapping[HostKey, Host] | None = None,
        loop: Scheduler | None = None,
        offload: Offload | None = None,
        follower: OutcomeSink | None = None,
    ) -> None:
        """``loop``: the pools' timers and clock (the running loop unless given; tests drive
        the pools with a fake one). ``offload``: where hash tables are rebuilt
        (``lb/tables.py``). ``follower``: a worker process's cluster, which takes its
        hosts and their health from the supervisor (``shared_hosts``) and reports outcomes to
        this sink instead of resolving, probing or ejecting itself."""
        self.spec = spec
        self.follower = follower
        self.on_change: Callable[[Cluster], None] | None = None
        """Called after every change of membership or health (the supervisor broadcasts)."""
        self.rng = rng
        self.clock = clock
        self.stats = ClusterStats()
        self.resources = ResourceManager(spec.limits)
        # Built here, on the control path (a reload); connections only read the slot.
        self.tls = tls_store.slot(spec.tls) if spec.tls is not None else None
        self.pools: ClusterPools[Any] = ClusterPools(
            self.resources, spec.limits, connector, self, self.tls, loop=loop
        )
        self.h2_pools: ClusterPools[Any] | None = None
        """Multiplexed pools, for HTTP/2 clusters (and ``useClientProtocol`` ones)."""
        if spec.protocol is not UpstreamProtocol.HTTP1 and h2_connector is not None:
            h2_tls = tls_store.slot(spec.tls, H2_ALPN) if spec.tls is not None else None
            self.h2_pools = ClusterPools(
                self.resources, spec.limits, h2_connector, self, h2_tls,
                loop=loop, max_streams=spec.max_concurrent_streams,
            )  # fmt: skip
        self._sweep_timer: asyncio.TimerHandle | None = None
        self.outlier = (
            OutlierDetector(spec.outlier, clock, self.on_host_change)
            if spec.outlier and follower is None
            else None
        )
        self.discovery: DnsDiscovery | None = None
        if spec.discovery is Discovery.STATIC:
            hosts = hosts_from_static(spec, existing)
        elif follower is not None:
            hosts = list(existing.values()) if existing else []
        else:
            self.discovery = DnsDiscovery(
                spec, resolver, clock, self.set_hosts, _log, existing=existing
            )
            hosts = self.discovery.hosts
        self.hosts: list[Host] = []
        self.healthy_hosts = 0
        self.host_by_label: dict[str, Host] = {}
        self.lb = PriorityLoadBalancer(
            spec.lb,
            (),
            panic_threshold=spec.panic_threshold,
            locality_weighted=spec.locality.locality_weighted,
            rng=rng,
            offload=offload,
        )
        self.health: HealthChecker | None = None
        if spec.health_check is not None and follower is None:
            self.health = HealthChecker(
                spec.health_check,
                lambda: self.hosts,
                self._probe_context,
                self._probe_server_name(),
                clock,
                self.on_host_change,
                on_pass=self.outlier.uneject if self.outlier is not None else None,
                tls_slot=self.tls,
            )
        self.set_hosts(hosts)

    # -- lifecycle (control path) ----------------------------------------------------------
    async def start(self) -> None:
        if self.discovery is not None:
            await self.discovery.start()
        if self.health is not None:
            await self.health.start()
        if self.outlier is not None:
            self._schedule_sweep()

    async def stop(self) -> None:
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
        if self.discovery is not None:
            self.discovery.stop()
        if self.health is not None:
            await self.health.stop()
        self.pools.close()
        if self.h2_pools is not None:
            self.h2_pools.close()

    def set_hosts(self, hosts: list[Host]) -> None:
        """New membership (static build, DNS refresh): keep state of surviving hosts."""
        self.pools.retain_hosts({h.key for h in hosts})
        if self.h2_pools is not None:
            self.h2_pools.retain_hosts({h.key for h in hosts})
        self.hosts = hosts
        self.host_by_label = {h.label: h for h in hosts}
        if self.outlier is not None:
            self.outlier.set_hosts(hosts)
        elif self.follower is not None:
            attach_reporters(self, self.follower)
        self.lb.update(hosts)
        self.healthy_hosts = sum(1 for h in hosts if h.healthy)
        if self.on_change is not None:
            self.on_change(self)

    def on_host_change(self, host: Host | None) -> None:
        """Outlier detection or a health check changed a host's health (None: the supervisor
        changed several): recompute loads."""
        self.lb.update()
        self.healthy_hosts = sum(1 for h in self.hosts if h.healthy)
        if self.on_change is not None:
            self.on_change(self)

    def _schedule_sweep(self) -> None:
        assert self.spec.outlier is not None
        loop = asyncio.get_running_loop()
        self._sweep_timer = loop.call_later(self.spec.outlier.interval, self._sweep)

    def _sweep(self) -> None:
        if self.outlier is not None:
            self.outlier.sweep()
            self._schedule_sweep()

    # -- data path -------------------------------------------------------------------------
    def choose_host(self, ctx: LbContext) -> Host | None:
        host = self.lb.choose_host(ctx)
        if not ctx.excluded:
            return host
        if host is not None and host.key in ctx.excluded and len(self.hosts) > 1:
            # Envoy ``previous_hosts`` predicate: a few more picks to find an untried host.
            for _ in range(5):
                again = self.lb.choose_host(ctx)
                if again is not None and again.key not in ctx.excluded:
                    return again
        return host

    def hash_key(
        self,
        req: RequestHead,
        source_ip: Callable[[], str],
        remote: tuple[str, int],
        local: tuple[str, int],
    ) -> tuple[int | None, bytes | None]:
        """The request's consistent-hash key, and a ``set-cookie`` value when a cookie policy
        with a ttl found no cookie (Envoy mints one from the downstream connection's remote and
        local addresses, ports included, and hashes the request by it)."""
        spec = self.spec.lb.hash_key
        if spec is None:
            return None, None
        ip = source_ip() if spec.kind is HashKeyKind.SOURCE_IP else ""
        key = compute_hash_key(spec, req.headers, lambda: req.query_params, ip)
        if key is None and should_generate_cookie(spec, key):
            cookie = generate_cookie(spec, remote, local)
            return cookie.hash_key, cookie.set_cookie
        return key, None

    def pool_for(self, host: Host, authority: bytes, h2: bool = False) -> HostPool[Any]:
        """The pool for ``host`` and the SNI the request implies; ``h2``: the multiplexed
        pool (the caller decided the request goes upstream over HTTP/2)."""
        tls = self.spec.tls
        sni = None
        if tls is not None:
            host_part = authority.decode("latin-1").rsplit(":", 1)[0] if authority else None
            sni = upstream_server_hostname(tls, host_part)
        if h2 and self.h2_pools is not None:
            return self.h2_pools.get(host, sni)
        return self.pools.get(host, sni)

    def record_status(self, host: Host, status: int) -> None:
        stats = self.stats
        if status < 300:
            stats.rq_2xx += 1
        elif status < 400:
            stats.rq_3xx += 1
        elif status < 500:
            stats.rq_4xx += 1
        else:
            stats.rq_5xx += 1
        monitor = host.monitor
        if isinstance(monitor, HostMonitor) and monitor.record_status(status):
            self._check_soon(host)

    def record_local(self, host: Host, origin: LocalOrigin) -> None:
        if origin is LocalOrigin.RESET:
            self.stats.resets += 1
        monitor = host.monitor
        if isinstance(monitor, HostMonitor) and monitor.record_local(origin):
            self._check_soon(host)

    def on_extra_data(self, host: Host) -> None:
        """An upstream sent more data than its response (nginx: "upstream sent more data than
        specified"): counted, and the connection closes."""
        self.stats.extra_data += 1
        _log.warning(
            "upstream %s sent more data than specified (cluster %s); connection closed",
            host.label,
            self.spec.key,
        )

    def on_connected(self, host: Host) -> None:
        monitor = host.monitor
        if isinstance(monitor, HostMonitor):
            monitor.record_local(LocalOrigin.CONNECT_SUCCESS)

    def on_connect_failed(self, host: Host, timeout: bool) -> None:
        if timeout:
            self.stats.connect_timeout += 1
        else:
            self.stats.connect_fail += 1

    def _check_soon(self, host: Host) -> None:
        """The data path only reports; the detector decides, right after this callback."""
        if self.outlier is not None:
            asyncio.get_running_loop().call_soon(self.outlier.check, host)

    # -- health-check plumbing ---------------------------------------------------------------
    def _probe_context(self) -> ssl.SSLContext | None:
        tls = self.tls
        if tls is None:
            return None
        if tls.context is None:
            raise TlsConfigError(tls.error)
        return tls.context

    def _probe_server_name(self) -> str | None:
        tls = self.spec.tls
        if tls is None:
            return None
        hc = self.spec.health_check
        named = None if hc is None else hc.grpc.authority if hc.grpc is not None else hc.host
        return upstream_server_hostname(tls, named or self.spec.service_host)
