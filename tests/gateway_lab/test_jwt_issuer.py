"""Tests: the lab's JWT issuer: its key under the workdir, the JWKS the control API serves, and
``gateway-lab token``, whose tokens the gateway's own verifier accepts."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway_core.security.jwks import parse_jwks
from gateway_core.security.jwt_token import check_claims, parse_jwt, verify_signature
from gateway_lab import jwt_issuer
from gateway_lab.cli import main
from gateway_lab.control import build_control_app
from tests.gateway_lab.test_control import FakeLab


def test_key_is_private_kept_and_tokens_verify(tmp_path: Path) -> None:
    assert jwt_issuer.ensure_issuer_key(tmp_path) is True
    path = jwt_issuer.key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    assert jwt_issuer.ensure_issuer_key(tmp_path) is False
    assert path.read_bytes() == before
    keys, notes = parse_jwks(jwt_issuer.jwks_document(tmp_path))
    assert notes == []
    assert "d" not in json.loads(jwt_issuer.jwks_document(tmp_path))["keys"][0]
    token = jwt_issuer.mint(tmp_path, "jason", ["admins"], ttl=60)
    parsed = parse_jwt(token)
    check_claims(parsed, time.time(), frozenset({jwt_issuer.AUDIENCE}))
    verify_signature(parsed, keys)
    assert parsed.payload["sub"] == "jason"
    assert parsed.payload["groups"] == ["admins"]
    assert parsed.issuer == jwt_issuer.ISSUER


def test_token_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``gateway-lab token --user jason --groups admins --workdir DIR`` prints one token; with
    no key there it fails with a message."""
    assert main(["token", "--user", "ann", "--workdir", str(tmp_path)]) == 1
    assert "no lab issuer key" in capsys.readouterr().err
    jwt_issuer.ensure_issuer_key(tmp_path)
    assert (
        main(["token", "--user", "jason", "--groups", "admins,dev", "--workdir", str(tmp_path)])
        == 0
    )
    token = capsys.readouterr().out.strip()
    payload = parse_jwt(token).payload
    assert (payload["sub"], payload["groups"]) == ("jason", ["admins", "dev"])
    assert payload["exp"] - payload["iat"] == 3600


async def test_control_api_serves_the_jwks(tmp_path: Path) -> None:
    jwt_issuer.ensure_issuer_key(tmp_path)
    lab = FakeLab()
    lab.jwks = lambda: jwt_issuer.jwks_document(tmp_path)  # type: ignore[method-assign]
    runner = web.AppRunner(build_control_app(lab))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/jwks.json") as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            body = await r.text()
    finally:
        await runner.cleanup()
    keys, _ = parse_jwks(body)
    assert [k.algorithms for k in keys.keys] == [frozenset({"ES256"})]
