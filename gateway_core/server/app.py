"""Control path: run one gateway process (either tier) from its settings.

Start: admin server (``/ready`` says 503), load → validate → compile → apply, then ready.
SIGHUP or a file change reloads; a rejected config keeps the last good one serving.
SIGTERM drains (issue "graceful drain"): readiness fails at once, listeners keep accepting for
``drain_propagation`` seconds, then close; keep-alive clients get ``Connection: close`` on their
next response; in-flight requests get ``drain_deadline`` seconds; the process exits 0.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, cast

from prometheus_client import CollectorRegistry

from gateway_core.config.diagnostics import Severity
from gateway_core.observability.access_log import AccessLog
from gateway_core.observability.istio_metrics import SourceInfo
from gateway_core.observability.metrics import GatewayMetrics
from gateway_core.observability.tracing import TracingCollector
from gateway_core.proxy.h2_upstream import H2UpstreamConnection
from gateway_core.proxy.upstream_conn import UpstreamConnection
from gateway_core.security.jwks_store import JwksStore
from gateway_core.server.listeners import ListenerSet
from gateway_core.server.reload import ConfigWatcher
from gateway_core.server.state import GatewayRuntime, RolloutError
from gateway_core.settings import GatewaySettings
from gateway_core.snapshot import NodeInfo
from gateway_core.tls.common import TlsConfigError
from gateway_core.upstream.client_tls import ClientContextStore
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.cluster_manager import ClusterManager
from gateway_core.upstream.connector import SocketConnector
from gateway_core.upstream.discovery import DnsResolver
from gateway_core.upstream.lb.tables import thread_offload
from gateway_core.upstream.shared_hosts import OutcomeSink
from gateway_core.utils.clock import MonotonicClock
from gateway_core.utils.tasks import background, spawn

if TYPE_CHECKING:
    from aiohttp import web

    # The OpenTelemetry SDK is imported only when tracing is on, the admin server (aiohttp's
    # web server, the dashboard) only by a process that serves it: never by a worker.
    from gateway_core.observability.span_export import OtlpSpanSink
    from gateway_core.pipeline import BuildResult

_log = logging.getLogger("gateway")

Rollout = Callable[["BuildResult", dict[str, Cluster]], Awaitable[None]]


def _build(paths: list[str], node: NodeInfo) -> BuildResult:
    """Load, validate and compile (in an executor thread). The loader (YAML) is imported here:
    worker processes are handed validated resources and never read configuration files."""
    from gateway_core.pipeline import build_snapshot

    return build_snapshot(paths, node)


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        *,
        wall_clock: Callable[[], float] = time.time,
        follower: OutcomeSink | None = None,
        reserve_ports: bool = False,
        on_hosts_change: Callable[[Cluster], None] | None = None,
    ) -> None:
        """``wall_clock``: seconds since the epoch (certificate expiry, JWT ``exp``/``nbf``).
        The other defaults run one whole gateway. With ``--workers N`` the supervisor's gateway
        has ``reserve_ports`` (it holds ports, serves no traffic) and ``on_hosts_change`` (it
        broadcasts host health); a worker's has ``follower`` (its clusters follow the
        supervisor's hosts and report outcomes there) and listens with ``SO_REUSEPORT``."""
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(
            self.registry,
            settings.tier,
            wall_clock,
            source=SourceInfo(
                workload=settings.workload_name or f"{settings.tier}-gateway",
                namespace=settings.namespace,
                cluster=settings.cluster_name,
                labels=settings.labels,
            ),
        )
        rng = random.Random(settings.rng_seed)
        self.clock = MonotonicClock()
        self.tls_store = ClientContextStore()
        resolver = self._resolver = DnsResolver(list(settings.dns_servers) or None)
        clusters = ClusterManager(
            rng=rng,
            clock=self.clock,
            resolver=resolver,
            connector=SocketConnector(UpstreamConnection),
            h2_connector=SocketConnector(H2UpstreamConnection),
            tls_store=self.tls_store,
            offload=thread_offload(),
            follower=follower,
            on_change=on_hosts_change,
        )
        self.runtime = GatewayRuntime(
            settings,
            metrics=self.metrics,
            access_log=AccessLog(settings.access_log, settings.access_log_format),
            clusters=clusters,
            rng=rng,
            jwt_keys=JwksStore(wall=wall_clock),
        )
        self.registry.register(self.runtime.jwt_keys.collector(settings.tier))
        self.listeners = ListenerSet(
            self.runtime, shared=follower is not None, reserve=reserve_ports
        )
        self.span_sink: OtlpSpanSink | None = None
        if settings.tracing_endpoint:
            from gateway_core.observability.span_export import build_tracing

            self.runtime.tracer, self.span_sink = build_tracing(settings, rng)
        self.registry.register(TracingCollector(settings.tier, self.span_sink))
        self.runtime.listeners = self.listeners
        self.metrics.tls_certificates = self.listeners.certificate_expiry
        self._reload_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._drain_task: asyncio.Task[None] | None = None
        self._admin: web.AppRunner | None = None
        self.admin_port = 0
        self._watcher = ConfigWatcher(
            list(settings.config_paths), settings.watch_interval, self.reload
        )
        self.rollout: Rollout | None = None
        """Set by the supervisor: makes a version live in every worker before it publishes."""
        self.admin_hooks: list[Callable[[web.Application], None]] = []
        """Run on the admin application before it starts (the supervisor adds its own)."""
        self.on_certificates: Callable[[], None] | None = None
        """Set by the supervisor: certificate files changed (workers rebuild their contexts)."""

    async def _apply(self, result: BuildResult) -> None:
        assert result.snapshot is not None
        rollout = self.rollout
        if rollout is None:
            await self.runtime.apply(result.snapshot)
            return

        async def hook(clusters: dict[str, Cluster]) -> None:
            await rollout(result, clusters)

        await self.runtime.apply(result.snapshot, before_publish=hook)

    # -- startup ---------------------------------------------------------------------------
    async def start(self) -> bool:
        await self._start_admin()
        self._resolver.prepare()  # a worker (which never resolves) never gets here
        self._watcher.mark_loaded()  # a change made while this first load runs reloads after it
        result = await asyncio.get_running_loop().run_in_executor(
            None, _build, list(self.settings.config_paths), self.settings.node()
        )
        for diag in result.diagnostics:
            level = logging.ERROR if diag.severity is Severity.ERROR else logging.WARNING
            _log.log(level, "%s", diag)
        if result.snapshot is None:
            _log.error("configuration rejected; not starting")
            return False
        try:
            await self._apply(result)
        except (OSError, TlsConfigError, RolloutError) as exc:
            _log.error("%s", exc)
            return False
        self.runtime.ready = True
        self.runtime.record_reload(True)
        self.metrics.config_reloads["success"] += 1
        if not self.settings.sticky_secret and any(
            c.sticky is not None for c in result.snapshot.clusters.values()
        ):
            _log.warning(
                "sticky sessions without --sticky-secret-file: cookies are only valid for this "
                "process; give every replica the same secret"
            )
        _log.info("ready: config version %s", result.snapshot.version)
        background(self._watcher.run(), name="config watcher")
        background(self._watch_certificates(), name="certificate watcher")
        return True

    async def _start_admin(self) -> None:
        from aiohttp import web

        from gateway_core.server.admin import build_admin_app
        from gateway_core.server.admin_auth import AdminAuth

        try:
            auth = AdminAuth.load(
                self.settings.admin_token_file, self.settings.admin_allow_unauthenticated_loopback
            )
        except ValueError as exc:
            raise OSError(errno.EINVAL, str(exc)) from exc
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot read --admin-token-file {exc.filename}: {exc.strerror}"
            ) from exc
        app = build_admin_app(self.runtime, self.registry, self.reload, self.begin_drain, auth)
        for hook in self.admin_hooks:
            hook(app)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, port = self.settings.admin_address
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(
                exc.errno, f"cannot listen on admin address {host}:{port}: {exc.strerror}"
            ) from exc
        self._admin = runner
        # aiohttp has no public accessor for the bound port (needed with port 0).
        server = cast(asyncio.Server | None, site._server)
        if server is not None and server.sockets:
            self.admin_port = server.sockets[0].getsockname()[1]
        _log.info(
            "admin listening on %s:%d; mutating calls allowed for %s",
            host,
            self.admin_port or port,
            auth.describe(),
        )

    # -- reload ------------------------------------------------------------------------------
    async def reload(self) -> bool:
        async with self._reload_lock:
            result = await asyncio.get_running_loop().run_in_executor(
                None, _build, list(self.settings.config_paths), self.settings.node()
            )
            runtime = self.runtime
            if result.snapshot is None:
                errors = [str(d) for d in result.diagnostics.errors]
                return self._rejected("\n".join(errors))
            if result.snapshot.version == runtime.snapshot.version:
                # The files are good again (e.g. a rejected edit was undone): no error is left.
                runtime.last_error = self.metrics.config_last_error = ""
                runtime.record_reload(True, changed=False)
                self._watcher.mark_loaded()
                return True
            try:
                await self._apply(result)
            except (OSError, TlsConfigError, RolloutError) as exc:
                return self._rejected(str(exc))
            runtime.last_error = ""
            runtime.record_reload(True)
            self.metrics.config_last_error = ""
            self.metrics.config_reloads["success"] += 1
            self._watcher.mark_loaded()
            _log.info("configuration reloaded: version %s", result.snapshot.version)
            return True

    def _rejected(self, message: str) -> bool:
        self.runtime.last_error = message
        self.runtime.record_reload(False, message)
        self.metrics.config_last_error = message
        self.metrics.config_reloads["rejected"] += 1
        _log.error(
            "configuration rejected; still serving version %s:\n%s",
            self.runtime.snapshot.version,
            message,
        )
        return False

    async def _watch_certificates(self) -> None:
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            reloaded, errors = self.listeners.reload_certificates()
            self.metrics.tls_reloads["success"] += reloaded
            # Upstream client contexts are rebuilt here, never by a connection being opened.
            generation = self.tls_store.generation
            errors += self.tls_store.refresh()
            if self.on_certificates is not None and (
                reloaded or generation != self.tls_store.generation
            ):
                self.on_certificates()
            for err in errors:
                self.metrics.tls_reloads["rejected"] += 1
                _log.error("certificate reload failed: %s", err)

    # -- drain and stop ------------------------------------------------------------------------
    def begin_drain(self, propagation: float | None = None) -> None:
        if self._drain_task is None:
            self._drain_task = spawn(self._drain(propagation), name="drain")

    async def _drain(self, propagation: float | None) -> None:
        runtime = self.runtime
        settings = self.settings
        runtime.draining = True
        _log.info("draining: readiness now fails")
        await asyncio.sleep(settings.drain_propagation if propagation is None else propagation)
        self.listeners.stop_accepting()
        for conn in list(runtime.connections):
            conn.drain()  # HTTP/1.1: idle ones close; HTTP/2: GOAWAY, open streams finish
        deadline = time.monotonic() + settings.drain_deadline
        # A bounded 50 ms poll keeps drain bookkeeping out of the data path.
        while _busy(runtime) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        left = [c for c in runtime.connections if c.current is not None]
        if left:
            _log.warning("drain deadline reached with %d requests in flight", len(left))
        for conn in list(runtime.connections):
            if conn.transport is not None:
                conn.transport.close()
        self._stop.set()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def close(self) -> None:
        self.listeners.stop_accepting()
        for conn in list(self.runtime.connections):
            if conn.transport is not None:
                conn.transport.abort()
        await self.runtime.cluster_manager.close()
        await self.runtime.jwt_keys.close()
        self.runtime.access_log.close()
        if self.span_sink is not None:  # what is queued goes out, within 5 s
            await asyncio.get_running_loop().run_in_executor(None, self.span_sink.close, 5.0)
        if self._admin is not None:
            await self._admin.cleanup()


def _busy(runtime: GatewayRuntime) -> bool:
    return any(c.current is not None for c in runtime.connections)


async def serve(
    settings: GatewaySettings, factory: Callable[[GatewaySettings], Gateway] = Gateway
) -> int:
    """Run until drained; ``factory`` builds the process's gateway (``Supervisor`` for
    ``--workers N``)."""
    gateway = factory(settings)
    loop = asyncio.get_running_loop()
    try:
        started = await gateway.start()
    except OSError as exc:
        _log.error("%s", exc)
        await gateway.close()
        return 1
    if not started:
        await gateway.close()
        return 1
    loop.add_signal_handler(signal.SIGTERM, gateway.begin_drain)
    loop.add_signal_handler(signal.SIGINT, lambda: gateway.begin_drain(0.0))
    loop.add_signal_handler(
        signal.SIGHUP, lambda: background(gateway.reload(), name="sighup reload")
    )
    print(
        f"{settings.tier} ready (admin {settings.admin_address[0]}:{gateway.admin_port})",
        file=sys.stderr,
        flush=True,
    )
    await gateway.wait_stopped()
    await gateway.close()
    return 0
