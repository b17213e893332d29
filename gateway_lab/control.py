"""Control path (lab): the lab control API (served by the supervisor) and its client.

``GET  /status``                     the lab's state, workdir and every process (pid, alive, ready)
``POST /processes/<name>/kill``      signal a process (``?signal=KILL`` default, or TERM/INT)
``POST /processes/<name>/start``     start a stopped process again; waits until it is ready
``POST /shutdown``                   stop the whole lab (what ``gateway-lab down`` sends)
``GET  /jwks.json``                  the lab JWT issuer's public keys (``gateway_lab.jwt_issuer``)

It listens on 127.0.0.1:15999 (``control`` in topology.yaml). Scenarios and tests use it to kill
and restart a Tier-2 gateway while the rest of the lab keeps running. The POST calls go through
the gateway admin's guard (``gateway_core.server.admin_auth``): the lab lets loopback callers in
without a token, and refuses everyone else (401).
"""

from __future__ import annotations

import signal
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from gateway_core.server.admin_auth import AdminAuth, auth_middleware

SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}


class LabControl(Protocol):
    def status(self) -> dict[str, Any]: ...

    async def kill(self, name: str, sig: signal.Signals) -> dict[str, Any]: ...

    async def start_process(self, name: str, wait: bool) -> dict[str, Any]: ...

    def request_stop(self) -> None: ...

    def jwks(self) -> str: ...


class ProcessError(Exception):
    """A control request that cannot be done: unknown process, already running, not running."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


LAB = web.AppKey("lab", LabControl)


def build_control_app(lab: LabControl, auth: AdminAuth | None = None) -> web.Application:
    """The control API; without ``auth`` nobody may call its POST endpoints."""
    app = web.Application(middlewares=[auth_middleware(auth or AdminAuth())])
    app[LAB] = lab
    app.router.add_get("/status", _status)
    app.router.add_post("/processes/{name}/kill", _kill)
    app.router.add_post("/processes/{name}/start", _start)
    app.router.add_post("/shutdown", _shutdown)
    app.router.add_get("/jwks.json", _jwks)
    return app


async def _jwks(request: web.Request) -> web.Response:
    return web.Response(text=request.app[LAB].jwks(), content_type="application/json")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[LAB].status())


async def _kill(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    sig = SIGNALS.get(request.query.get("signal", "KILL").upper())
    if sig is None:
        return _error(400, f"signal must be one of {', '.join(SIGNALS)}")
    try:
        return web.json_response(await request.app[LAB].kill(name, sig))
    except ProcessError as exc:
        return _error(exc.status, str(exc))


async def _start(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    wait = request.query.get("wait", "true").lower() != "false"
    try:
        return web.json_response(await request.app[LAB].start_process(name, wait))
    except ProcessError as exc:
        return _error(exc.status, str(exc))


async def _shutdown(request: web.Request) -> web.Response:
    request.app[LAB].request_stop()
    return web.json_response({"stopping": True}, status=202)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# ---- client ---------------------------------------------------------------------------------


class LabNotRunning(Exception):
    """Nothing answers on the control address."""


class ControlClient:
    """Async client of the control API; every call raises ``LabNotRunning`` when no lab runs."""

    def __init__(self, address: tuple[str, int], timeout: float = 60.0) -> None:
        self.base = f"http://{address[0]}:{address[1]}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def status(self) -> dict[str, Any]:
        return await self._call("GET", "/status")

    async def kill(self, name: str, sig: str = "KILL") -> dict[str, Any]:
        return await self._call("POST", f"/processes/{name}/kill?signal={sig}")

    async def start(self, name: str, wait: bool = True) -> dict[str, Any]:
        return await self._call("POST", f"/processes/{name}/start?wait={str(wait).lower()}")

    async def shutdown(self) -> dict[str, Any]:
        return await self._call("POST", "/shutdown")

    async def _call(self, method: str, path: str) -> dict[str, Any]:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout, trust_env=False) as session,
                session.request(method, self.base + path) as resp,
            ):
                body: dict[str, Any] = await resp.json()
                if resp.status >= 400:
                    raise ProcessError(resp.status, str(body.get("error", body)))
                return body
        except aiohttp.ClientConnectorError as exc:
            raise LabNotRunning(f"no lab is running ({self.base} refused: {exc.strerror})") from exc
