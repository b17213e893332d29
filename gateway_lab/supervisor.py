"""Control path (lab): ``gateway-lab up`` — start, watch and stop the embedded three-cluster lab.

Order: port check (nothing starts if any socket is taken) → certificates → control API → DNS
server → one pod group per cluster → the Tier-2 gateways → Tier-1, each phase waiting for its
readiness probes (admin ``/ready`` for gateways) with a ✓ line per process. Then the gateways
get a moment to settle (DNS-discovered hosts present, Tier-1's health checks passed) and the
curl commands are printed. SIGINT/SIGTERM or ``POST /shutdown`` stop every child and exit 0.
A child dying later is reported and the rest keeps running; one dying while starting stops the
lab with its log tail and exit status 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from aiohttp import web

from certs.generate import generate_lab_certs
from gateway_core.server.admin_auth import AdminAuth
from gateway_core.utils.tasks import spawn
from gateway_lab.commands import admin_commands, curl_commands, dashboard_urls, lab_commands
from gateway_lab.control import ProcessError, build_control_app
from gateway_lab.jwt_issuer import ensure_issuer_key, jwks_document
from gateway_lab.plan import PHASES, Workdir, lab_plan
from gateway_lab.processes import Child, StartupError, check_sockets
from gateway_lab.topology import GatewayNode, Topology

SETTLE_TIMEOUT = 15.0


class Supervisor:
    def __init__(
        self,
        topology: Topology,
        workdir: Path,
        *,
        timeout: float = 60.0,
        wait: bool = True,
        out: TextIO | None = None,
    ) -> None:
        self.topology = topology
        self.workdir = Workdir(workdir.resolve())
        self.timeout = timeout
        self.wait = wait
        self.out = out or sys.stdout
        self.state = "starting"
        plan = lab_plan(topology, self.workdir)
        self.children = [Child(spec, self._on_unexpected_exit) for _, spec in plan]
        self._phase = {spec.name: phase for phase, spec in plan}
        self._stop = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._background: asyncio.Task[None] | None = None
        self._jwks = '{"keys": []}'

    def _phases(self) -> list[list[Child]]:
        return [[c for c in self.children if self._phase[c.name] == p] for p in PHASES]

    def child(self, name: str) -> Child:
        for c in self.children:
            if c.name == name:
                return c
        raise ProcessError(404, f"no process {name!r}; known: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [c.name for c in self.children]

    # -- run -------------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, self.request_stop)
        try:
            problems = check_sockets(self.topology.sockets())
            if problems:
                for problem in problems:
                    self._print(f"✗ {problem}")
                self._print("nothing was started; is another lab running? try: gateway-lab status")
                return 1
            return await self._run_checked()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _run_checked(self) -> int:
        self._print(f"gateway-lab: workdir {self.workdir.root}")
        self.workdir.prepare(self.topology)
        actions = await asyncio.get_running_loop().run_in_executor(
            None, generate_lab_certs, self.workdir.certs
        )
        issued = sorted(name for name, action in actions.items() if action == "issued")
        self._print(
            f"✓ {'certificates':<18} {self.workdir.certs} "
            f"({'issued ' + ', '.join(issued) if issued else 'all current, kept'})"
        )
        created = ensure_issuer_key(self.workdir.root)
        self._jwks = jwks_document(self.workdir.root)
        host, port = self.topology.control
        self._print(
            f"✓ {'JWT issuer':<18} {self.workdir.root / 'jwt'} "
            f"({'new key' if created else 'key kept'}; JWKS at http://{host}:{port}/jwks.json)"
        )
        # The control API listens on loopback; its POST calls are for loopback callers only.
        auth = AdminAuth(allow_unauthenticated_loopback=True)
        runner = web.AppRunner(build_control_app(self, auth), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            # Taken since the port check: another lab won the race.
            await runner.cleanup()
            self._print(f"✗ the lab control API cannot listen on {host}:{port}: {exc.strerror}")
            return 1
        self._print(f"✓ {'control API':<18} http://{host}:{port}/status")
        self._session = aiohttp.ClientSession(trust_env=False)
        code = 0
        try:
            code = await self._start_and_serve()
        finally:
            self.state = "stopping"
            await self._stop_all()
            await self._session.close()
            await runner.cleanup()
        return code

    async def _start_and_serve(self) -> int:
        started = time.monotonic()
        startup = spawn(self._start_all(), name="lab startup")
        stopper = spawn(self._stop.wait(), name="lab stop request")
        await asyncio.wait({startup, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not startup.done():
            startup.cancel()
            self._print("stop requested while starting: stopping everything")
            await asyncio.gather(startup, return_exceptions=True)
            return 0
        error = startup.result()
        if error is not None:
            stopper.cancel()
            self._print(f"✗ {error}")
            self._print("the lab did not start; every process it started is being stopped")
            return 1
        self.state = "running"
        took = time.monotonic() - started
        if self.wait:
            self._print(f"lab ready in {took:.1f}s")
        else:
            self._print(f"lab started in {took:.1f}s (--no-wait: readiness is reported below)")
        self._print_commands()
        await stopper
        self._print("stopping the lab")
        return 0

    async def _start_all(self) -> StartupError | None:
        """Start phase by phase; a failure is returned (not raised) to be reported once."""
        try:
            await self._start_phases()
        except StartupError as exc:
            return exc
        return None

    async def _start_phases(self) -> None:
        deadline = time.monotonic() + self.timeout
        for phase in self._phases():
            for child in phase:
                await child.start()
            if self.wait:
                await asyncio.gather(*(self._ready(child, deadline) for child in phase))
                continue
            for child in phase:
                self._print(f"• {child.name:<18} started (pid {child.pid}) {child.spec.summary}")
        if self.wait:
            await self._settle()
        else:
            self._background = spawn(self._report_ready(deadline), name="lab readiness")

    async def _report_ready(self, deadline: float) -> None:
        """--no-wait: readiness is still probed and reported, it just does not gate start-up."""

        async def one(child: Child) -> None:
            try:
                await self._ready(child, deadline)
            except StartupError as exc:
                self._print(f"✗ {exc}")

        await asyncio.gather(*(one(c) for c in self.children))

    async def _ready(self, child: Child, deadline: float) -> None:
        assert self._session is not None
        await child.wait_ready(self._session, deadline)
        self._print(f"✓ {child.name:<18} {child.spec.summary}  (pid {child.pid})")

    async def _settle(self) -> None:
        """Wait until every gateway has discovered hosts and Tier-1 sees every Tier-2 healthy."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        pending: list[str] = []
        while time.monotonic() < deadline:
            pending = []
            for gw in self.topology.gateways:
                pending += [f"{gw.name}: {c}" for c in await self._unsettled(gw)]
            if not pending:
                return
            await asyncio.sleep(0.2)
        self._print("! not settled yet (first requests may fail): " + "; ".join(pending))

    async def _unsettled(self, gw: GatewayNode) -> list[str]:
        """Clusters whose lab DNS names have not resolved yet, or with unhealthy hosts."""
        base = f"http://{gw.admin[0]}:{gw.admin[1]}"
        try:
            dump = await self._get_json(f"{base}/config_dump")
            live = await self._get_json(f"{base}/clusters")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return [f"{base}: {exc}"]
        zone = self.topology.dns_records()
        out = []
        for key, spec in dump.get("clusters", {}).items():
            hosts = live.get(key, {}).get("hosts", [])
            in_lab = any(ep.get("address") in zone for ep in spec.get("endpoints", []))
            if in_lab and not hosts:
                out.append(f"{key} has no hosts yet")
            elif not all(h.get("healthy") for h in hosts):
                out.append(f"{key} has unhealthy hosts")
        return out

    async def _get_json(self, url: str) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as resp:
            body: dict[str, Any] = await resp.json()
            return body

    def _print_commands(self) -> None:
        self._print("\nDashboards (open in a browser):")
        for name, url in dashboard_urls(self.topology):
            self._print(f"  {name:<18} {url}")
        self._print("\nTry these (the lab serves them as printed):")
        for what, cmd in curl_commands(self.topology, self.workdir.certs / "ca.crt"):
            self._print(f"  # {what}\n  {cmd}")
        self._print("\nAdmin endpoints:")
        for what, cmd in admin_commands(self.topology):
            self._print(f"  # {what}\n  {cmd}")
        self._print("\nLab commands (from another terminal; Ctrl-C here stops the lab too):")
        for what, cmd in lab_commands(self.topology):
            self._print(f"  # {what}\n  {cmd}")
        self._print(
            f"\nLogs: {self.workdir.logs}/"
            f"\nOverrides (Istio YAML, hot-reloaded): {self.workdir.root / 'overrides'}/<cluster>/"
        )

    # -- stop --------------------------------------------------------------------------------
    def jwks(self) -> str:
        """The lab issuer's JWKS (served at ``/jwks.json`` for the gateways' ``jwksUri``)."""
        return self._jwks

    def request_stop(self) -> None:
        self._stop.set()

    async def _stop_all(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        await asyncio.gather(*(c.stop() for c in reversed(self.children)))
        self._print("✓ every lab process has stopped")

    def _on_unexpected_exit(self, child: Child, code: int) -> None:
        if self.state != "running":
            return
        how = f"signal {-code}" if code < 0 else f"code {code}"
        self._print(
            f"✗ {child.name} (pid {child.pid}) exited unexpectedly with {how}; the rest of "
            f"the lab keeps running (restart it: gateway-lab start {child.name})\n"
            f"{child.log_tail(5)}"
        )

    # -- control API -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": os.getpid(),
            "workdir": str(self.workdir.root),
            "topology": str(self.topology.path),
            "ready": self.state == "running" and all(c.ready and c.alive for c in self.children),
            "processes": [c.status() for c in self.children],
        }

    async def kill(self, name: str, sig: signal.Signals) -> dict[str, Any]:
        child = self.child(name)
        if not child.alive:
            raise ProcessError(409, f"{name} is not running")
        pid = child.pid
        await child.stop(sig)
        self._print(f"• {name} (pid {pid}) stopped by the control API with {sig.name}")
        return child.status()

    async def start_process(self, name: str, wait: bool) -> dict[str, Any]:
        child = self.child(name)
        if child.alive:
            raise ProcessError(409, f"{name} is already running (pid {child.pid})")
        if self.state != "running":
            raise ProcessError(409, f"the lab is {self.state}")
        await child.start()
        if wait:
            assert self._session is not None
            try:
                await child.wait_ready(self._session, time.monotonic() + self.timeout)
            except StartupError as exc:
                await child.stop()
                raise ProcessError(500, str(exc)) from None
        self._print(f"✓ {name} started again by the control API (pid {child.pid})")
        return child.status()

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def run_lab(topology: Topology, workdir: Path, *, timeout: float, wait: bool) -> int:
    return asyncio.run(Supervisor(topology, workdir, timeout=timeout, wait=wait).run())
