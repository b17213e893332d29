"""Tests for gateway_core/server/admin_auth.py: the admin's mutating calls need a bearer token.

Read-only GETs stay open; ``POST /reload`` and ``POST /drain`` are refused with 401 and
``www-authenticate: Bearer`` without the token from ``--admin-token-file``, from loopback too,
unless ``--admin-allow-unauthenticated-loopback`` is set.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway_core.server.admin_auth import is_loopback
from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import GatewayProcess, wait_for
from tests.helpers import GatewayHarness

RULES = "  - directResponse: {status: 200, body: {string: ok}}"


async def _call(method: str, url: str, token: str | None = None) -> tuple[int, str, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers) as r,
    ):
        return r.status, r.headers.get("www-authenticate", ""), await r.text()


def _token_file(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "admin-token"
    path.write_text(token + "\n")
    return path


async def test_mutating_calls_need_the_token_even_on_loopback(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """No token or a wrong one: 401 with a Bearer challenge and nothing happens; GETs stay
    open; the right token reloads and drains."""
    token = _token_file(tmp_path, "correct-horse")
    harness: GatewayHarness = await gateway(
        config(free_port(), RULES, {}),
        admin_token_file=str(token),
        admin_allow_unauthenticated_loopback=False,
    )
    admin = harness.admin
    for path in ("/ready", "/healthz", "/config_dump", "/stats/prometheus"):
        assert (await _call("GET", admin + path))[0] == 200, path
    for path in ("/reload", "/drain"):
        status, challenge, _ = await _call("POST", admin + path)
        assert (status, challenge) == (401, 'Bearer realm="gateway-admin"'), path
        status, challenge, _ = await _call("POST", admin + path, token="wrong")
        assert status == 401 and 'error="invalid_token"' in challenge, path
    assert harness.gateway.runtime.draining is False
    status, _, body = await _call("POST", admin + "/reload", token="correct-horse")
    assert status == 200 and '"accepted": true' in body
    assert (await _call("POST", admin + "/drain", token="correct-horse"))[0] == 202
    assert harness.gateway.runtime.draining is True


async def test_a_rotated_token_file_takes_effect(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """Rewriting the token file (a Secret update) replaces the token without a restart."""
    token = _token_file(tmp_path, "old-token")
    harness: GatewayHarness = await gateway(
        config(free_port(), RULES, {}), admin_token_file=str(token)
    )
    assert (await _call("POST", harness.admin + "/reload", token="old-token"))[0] == 200
    token.write_text("new-token\n")
    later = time.time() + 5
    os.utime(token, (later, later))  # a distinct mtime even on a coarse clock
    assert (await _call("POST", harness.admin + "/reload", token="old-token"))[0] == 401
    assert (await _call("POST", harness.admin + "/reload", token="new-token"))[0] == 200


async def test_loopback_flag_admits_local_callers_without_a_token(
    gateway: Callable[..., Any],
) -> None:
    """``--admin-allow-unauthenticated-loopback``: a loopback caller reloads with no token;
    without the flag (and no token file) the same call is refused."""
    open_gw: GatewayHarness = await gateway(
        config(free_port(), RULES, {}), admin_allow_unauthenticated_loopback=True
    )
    closed_gw: GatewayHarness = await gateway(
        config(free_port(), RULES, {}), admin_allow_unauthenticated_loopback=False
    )
    assert (await _call("POST", open_gw.admin + "/reload"))[0] == 200
    assert (await _call("POST", closed_gw.admin + "/reload"))[0] == 401


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.2.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.7", False),
        ("::ffff:10.0.0.7", False),
        ("2001:db8::1", False),
        (None, False),
        ("", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(remote: str | None, loopback: bool) -> None:
    """The loopback exception covers 127/8, ::1 and their IPv4-mapped form, nothing else."""
    assert is_loopback(remote) is loopback


async def test_cli_flags_reach_the_admin_and_a_missing_file_stops_the_start(
    tmp_path: Path,
) -> None:
    """Through the CLI: ``--admin-token-file`` guards ``POST /drain`` (the process drains and
    exits once the token is given); a token file that does not exist stops the start."""
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(config(free_port(), RULES, {}))
    token = _token_file(tmp_path, "cli-token")
    proc = GatewayProcess(
        "tier2",
        [cfg],
        free_port(),
        tmp_path / "gw.log",
        "--bind-address",
        "127.0.0.1",
        "--admin-token-file",
        str(token),
        "--drain-propagation",
        "0",
    )
    try:
        await proc.wait_ready()
        assert (await _call("POST", proc.admin + "/drain"))[0] == 401
        assert proc.proc.poll() is None
        assert (await _call("POST", proc.admin + "/drain", token="cli-token"))[0] == 202

        async def exited() -> bool:
            return proc.proc.poll() is not None

        await wait_for(exited, 20, "the drained gateway to exit")
    finally:
        proc.stop()
    missing = GatewayProcess(
        "tier2",
        [cfg],
        free_port(),
        tmp_path / "missing.log",
        "--admin-token-file",
        str(tmp_path / "nope"),
    )
    try:
        assert missing.proc.wait(timeout=30) == 1
    finally:
        missing.stop()
    assert "cannot read --admin-token-file" in (tmp_path / "missing.log").read_text()
