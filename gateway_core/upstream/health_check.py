"""Control path: active HTTP health checking of a cluster's hosts (our addition; Istio has none).

Every ``policy.interval`` each host gets ``GET policy.path`` with ``Host: policy.host`` (or the
cluster's TLS server name); a status in ``policy.expected_statuses`` within ``policy.timeout`` is
a pass, anything else a failure -- including a 503 from a draining gateway, a timeout, a refused
connection or a TLS error. ``unhealthy_threshold`` consecutive failures set ``Host.hc_failed``;
``healthy_threshold`` consecutive passes clear it. ``on_change(host)`` runs after each flip so
the cluster can recompute its priority loads.

Start state: unlike Envoy, which keeps new hosts out of rotation until a first check passes, hosts
start healthy (a freshly configured cluster serves at once) and the first round runs immediately
at ``start``, so a dead host is marked after ``unhealthy_threshold`` rounds at the latest. Hosts
may change between rounds (``hosts`` is called every round); counters of surviving hosts are kept.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from gateway_core.snapshot import HealthCheckPolicy
from gateway_core.upstream.host import Host, HostKey
from gateway_core.utils.clock import Clock
from gateway_core.utils.tasks import spawn

_log = logging.getLogger("gateway.health_check")


@dataclass(slots=True)
class HostHealth:
    """Last observation and consecutive counters for one host (admin / explain output)."""

    successes: int = 0
    failures: int = 0
    last_status: int | None = None
    last_error: str | None = None
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
    ) -> None:
        """``on_pass`` runs after every passing probe (wire ``OutlierDetector.uneject`` to it
        for Envoy's ``successful_active_health_check_uneject_host``)."""
        self.policy = policy
        self._hosts = hosts
        self._ssl_context_factory = ssl_context_factory
        self._server_hostname = server_hostname
        self._clock = clock
        self._on_change = on_change
        self._on_pass = on_pass
        self._health: dict[HostKey, HostHealth] = {}
        self._session: aiohttp.ClientSession | None = None
        self._scheme = "http"
        self._task: asyncio.Task[None] | None = None

    @property
    def health(self) -> Mapping[HostKey, HostHealth]:
        return self._health

    async def start(self) -> None:
        """Open the client session and start the loop; the first round runs immediately."""
        if self._task is not None:
            return
        self._open_session()
        self._task = spawn(self._run(), name=f"health-check {self.policy.path}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def check_all(self) -> None:
        """One round over the current hosts (the loop calls this every interval)."""
        if self._session is None:
            self._open_session()
        hosts = list(self._hosts())
        live = {h.key for h in hosts}
        for key in [k for k in self._health if k not in live]:
            del self._health[key]
        await asyncio.gather(*(self._check(host) for host in hosts))

    def _open_session(self) -> None:
        context = self._ssl_context_factory()
        self._scheme = "https" if context is not None else "http"
        # One probe per host at a time: rounds do not overlap, so one connection is enough.
        if context is not None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=1, ssl=context)
        else:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=1)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def _run(self) -> None:
        while True:
            try:
                await self.check_all()
            except Exception:
                _log.exception("health check round failed")
            await asyncio.sleep(self.policy.interval)

    async def _check(self, host: Host) -> None:
        state = self._health.setdefault(host.key, HostHealth())
        status, error = await self._probe(host)
        state.last_status, state.last_error = status, error
        state.checked_at = self._clock.monotonic()
        if status is not None and status in self.policy.expected_statuses:
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

    async def _probe(self, host: Host) -> tuple[int | None, str | None]:
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
