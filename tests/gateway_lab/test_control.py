"""The lab control API: routes, errors, and the client's view of a lab that is not running."""

from __future__ import annotations

import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway_core.server.admin_auth import AdminAuth
from gateway_lab.control import (
    ControlClient,
    LabNotRunning,
    ProcessError,
    build_control_app,
)


class FakeLab:
    """Records what the API asked for; ``tier2-c1`` is the only process."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.alive = True

    def status(self) -> dict[str, Any]:
        return {"state": "ready", "processes": [{"name": "tier2-c1", "alive": self.alive}]}

    async def kill(self, name: str, sig: signal.Signals) -> dict[str, Any]:
        self._known(name)
        if not self.alive:
            raise ProcessError(409, f"{name} is not running")
        self.alive = False
        self.calls.append(("kill", name, sig.name))
        return {"name": name, "alive": False}

    async def start_process(self, name: str, wait: bool) -> dict[str, Any]:
        self._known(name)
        self.alive = True
        self.calls.append(("start", name, str(wait)))
        return {"name": name, "alive": True}

    def request_stop(self) -> None:
        self.calls.append(("stop",))

    def jwks(self) -> str:
        return '{"keys": []}'

    def _known(self, name: str) -> None:
        if name != "tier2-c1":
            raise ProcessError(404, f"no process {name!r}")


async def _serve(lab: FakeLab, auth: AdminAuth | None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(build_control_app(lab, auth))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeLab, ControlClient]]:
    """The control API as the lab serves it: loopback callers need no token."""
    lab = FakeLab()
    runner, port = await _serve(lab, AdminAuth(allow_unauthenticated_loopback=True))
    yield lab, ControlClient(("127.0.0.1", port))
    await runner.cleanup()


async def _post(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session, session.post(url, headers=headers) as resp:
        return resp.status, resp.headers.get("www-authenticate", "")


async def test_post_calls_need_a_token_without_the_loopback_flag(tmp_path: Path) -> None:
    """With a token file and no loopback flag, a POST from loopback without the token (or with
    a wrong one) is 401 with ``www-authenticate: Bearer`` and never reaches the lab; the right
    bearer token gets through; GET stays open."""
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    lab = FakeLab()
    runner, port = await _serve(lab, AdminAuth.load(str(token), False))
    base = f"http://127.0.0.1:{port}"
    try:
        with pytest.raises(ProcessError) as refused:
            await ControlClient(("127.0.0.1", port)).kill("tier2-c1")
        assert refused.value.status == 401
        status, challenge = await _post(base + "/shutdown")
        assert (status, challenge) == (401, 'Bearer realm="gateway-admin"')
        status, challenge = await _post(base + "/shutdown", token="wrong")
        assert status == 401 and 'error="invalid_token"' in challenge
        assert lab.calls == []
        assert (await ControlClient(("127.0.0.1", port)).status())["state"] == "ready"
        assert (await _post(base + "/processes/tier2-c1/kill", token="s3cret"))[0] == 200
        assert lab.calls == [("kill", "tier2-c1", "SIGKILL")]
    finally:
        await runner.cleanup()


async def test_no_auth_configured_refuses_every_post() -> None:
    """``build_control_app`` without ``auth`` lets nobody call POST, loopback included."""
    lab = FakeLab()
    runner, port = await _serve(lab, None)
    try:
        with pytest.raises(ProcessError) as refused:
            await ControlClient(("127.0.0.1", port)).shutdown()
        assert refused.value.status == 401 and lab.calls == []
    finally:
        await runner.cleanup()


async def test_kill_then_start_reach_the_lab(served: tuple[FakeLab, ControlClient]) -> None:
    """kill passes the named signal (KILL by default), start waits unless told not to."""
    lab, client = served
    assert (await client.kill("tier2-c1"))["alive"] is False
    assert (await client.start("tier2-c1", wait=False))["alive"] is True
    await client.kill("tier2-c1", "TERM")
    assert lab.calls == [
        ("kill", "tier2-c1", "SIGKILL"),
        ("start", "tier2-c1", "False"),
        ("kill", "tier2-c1", "SIGTERM"),
    ]


async def test_errors_carry_status_and_message(served: tuple[FakeLab, ControlClient]) -> None:
    """Unknown process is 404, killing a stopped one 409, a bad signal 400."""
    _, client = served
    with pytest.raises(ProcessError) as unknown:
        await client.kill("nope")
    assert (unknown.value.status, str(unknown.value)) == (404, "no process 'nope'")
    await client.kill("tier2-c1")
    with pytest.raises(ProcessError) as stopped:
        await client.kill("tier2-c1")
    assert (stopped.value.status, str(stopped.value)) == (409, "tier2-c1 is not running")
    with pytest.raises(ProcessError) as bad:
        await client.kill("tier2-c1", "HUP")
    assert bad.value.status == 400 and "KILL, TERM, INT" in str(bad.value)


async def test_status_and_shutdown(served: tuple[FakeLab, ControlClient]) -> None:
    """GET /status returns the lab's status; POST /shutdown asks it to stop (202)."""
    lab, client = served
    assert (await client.status())["processes"] == [{"name": "tier2-c1", "alive": True}]
    assert await client.shutdown() == {"stopping": True}
    assert lab.calls == [("stop",)]


async def test_client_reports_a_lab_that_is_not_running() -> None:
    """Nothing listening on the control address raises LabNotRunning with the address."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LabNotRunning, match=rf"no lab is running \(http://127.0.0.1:{port}"):
        await ControlClient(("127.0.0.1", port)).status()
