"""Control path: active health checking of a cluster's hosts (our addition; Istio has none).

Every ``policy.interval`` each host gets one probe within ``policy.timeout``: ``GET policy.path``
with ``Host: policy.host`` (or the cluster's TLS server name), passing on a status in
``policy.expected_statuses``; or, with ``policy.grpc``, a ``grpc.health.v1.Health/Check`` call
(``GrpcProber``, upstream/grpc_health_check.py) passing on ``SERVING``. Anything else fails --
including a 503 from a draining gateway, ``NOT_SERVING``, a timeout, a refused connection or a
TLS error. Both probes share the counting here: ``unhealthy_threshold`` consecutive failures
set ``Host.hc_failed``; ``healthy_threshold`` consecutive passes clear it. ``on_change(host)``
runs after each flip so the cluster can recompute its priority loads.

Start state: unlike Envoy, which keeps new hosts out of rotation until a first check passes, hosts
start healthy (a freshly configured cluster serves at once) and the first round runs immediately
at ``start``, so a dead host is marked after ``unhealthy_threshold`` rounds at the latest. Hosts
may change between rounds (``hosts`` is called every round); counters of surviving hosts are kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_core.snapshot import HealthCheckPolicy
from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.host import Host, HostKey
from gateway_core.upstream.probe import Prober, ProbeResult
from gateway_core.utils.clock import Clock
from gateway_core.utils.tasks import spawn

if TYPE_CHECKING:  # aiohttp is imported when probing starts: worker processes never probe
    import aiohttp

_log = logging.getLogger("gateway.health_check")


@dataclass(slots=True)
class HostHealth:
    """Last observation and consecutive counters for one host (admin / explain output)."""

    successes: int = 0
    failures: int = 0
    last_status: int | str | None = None
    """HTTP status, or the gRPC serving status name (``SERVING``, ``NOT_SERVING`` ...)."""
    last_error: str | None = None
    """Why the last probe failed (None after a pass)."""
    checked_at: float | None = None


class HealthChecker:
    def __init__(
        self,
        policy: HealthCheckPolicy,
        hosts: Callable[[], Sequence[Host]],
        ssl_context_factory: Callable[[], ssl.SSLContext | None],
        server_hostname: str | None,
        clock: Clock,
        on_change: Callable[[Host], None],
        *,
        on_pass: Callable[[Host], None] | None = None,
        tls_slot: ClientTlsSlot | None = None,
    ) -> None:
        """``on_pass`` runs after every passing probe (wire ``OutlierDetector.uneject`` to it
        for Envoy's ``successful_active_health_check_uneject_host``). HTTP probes take their
        TLS context from ``ssl_context_factory``; gRPC probes read the files of ``tls_slot``
        (the cluster's published upstream TLS) whenever the slot's context was rebuilt."""
        self.policy = policy
        self._hosts = hosts
        self._clock = clock
        self._on_change = on_change
        self._on_pass = on_pass
        self._health: dict[HostKey, HostHealth] = {}
        self._prober: Prober
        if policy.grpc is not None:
            # grpcio (about 12 MiB resident) is loaded only by gateways that probe over gRPC.
            from gateway_core.upstream.grpc_health_check import GrpcProber

            self._prober = GrpcProber(policy.grpc, policy.timeout, tls_slot, server_hostname)
        else:
            self._prober = HttpProber(policy, ssl_context_factory, server_hostname)
        self._task: asyncio.Task[None] | None = None

    @property
    def health(self) -> Mapping[HostKey, HostHealth]:
        return self._health

    @property
    def running(self) -> bool:
        """Started and not yet stopped (its probing loop and client are open)."""
        return self._task is not None

    async def start(self) -> None:
        """Open the client and start the loop; the first round runs immediately."""
        if self._task is not None:
            return
        self._prober.open()
        self._task = spawn(self._run(), name=f"health-check {self.policy.describe()}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        await self._prober.close()

    async def check_all(self) -> None:
        """One round over the current hosts (the loop calls this every interval)."""
        self._prober.open()
        hosts = list(self._hosts())
        live = {h.key for h in hosts}
        for key in [k for k in self._health if k not in live]:
            del self._health[key]
        await self._prober.begin_round(live)
        await asyncio.gather(*(self._check(host) for host in hosts))

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:
                _log.exception("health check round failed")
            await asyncio.sleep(self.policy.interval)

    async def _check(self, host: Host) -> None:
        state = self._health.setdefault(host.key, HostHealth())
        result = await self._prober.probe(host)
        state.last_status, state.last_error = result.status, result.error
        state.checked_at = self._clock.monotonic()
        if result.passed:
            state.successes += 1
            state.failures = 0
            if host.hc_failed and state.successes >= self.policy.healthy_threshold:
                host.hc_failed = False
                self._on_change(host)
            if self._on_pass is not None:
                self._on_pass(host)
            return
        state.failures += 1
        state.successes = 0
        if not host.hc_failed and state.failures >= self.policy.unhealthy_threshold:
            host.hc_failed = True
            self._on_change(host)


class HttpProber:
    """``GET policy.path`` over aiohttp, with the cluster's TLS context when it has one."""

    def __init__(
        self,
        policy: HealthCheckPolicy,
        ssl_context_factory: Callable[[], ssl.SSLContext | None],
        server_hostname: str | None,
    ) -> None:
        self.policy = policy
        self._ssl_context_factory = ssl_context_factory
        self._server_hostname = server_hostname
        self._session: aiohttp.ClientSession | None = None
        self._scheme = "http"

    def open(self) -> None:
        if self._session is not None:
            return
        import aiohttp

        context = self._ssl_context_factory()
        self._scheme = "https" if context is not None else "http"
        # One probe per host at a time: rounds do not overlap, so one connection is enough.
        if context is not None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=1, ssl=context)
        else:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=1)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def begin_round(self, live: Set[HostKey]) -> None:
        """Nothing per host: idle connections to hosts that left expire in the connector."""

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def probe(self, host: Host) -> ProbeResult:
        status, error = await self._get(host)
        passed = status is not None and status in self.policy.expected_statuses
        return ProbeResult(passed, status, error)

    async def _get(self, host: Host) -> tuple[int | None, str | None]:
        import aiohttp

        session = self._session
        assert session is not None
        address = f"[{host.address}]" if ":" in host.address else host.address
        url = f"{self._scheme}://{address}:{host.port}{self.policy.path}"
        host_header = self.policy.host or self._server_hostname or host.address
        try:
            async with session.get(
                url,
                headers={"Host": host_header},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.policy.timeout),
                server_hostname=self._server_hostname if self._scheme == "https" else None,
            ) as response:
                await response.read()
                return response.status, None
        except TimeoutError:
            return None, "timeout"
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            return None, f"{type(exc).__name__}: {exc}"
