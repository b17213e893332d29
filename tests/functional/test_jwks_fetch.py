"""Functional: keys from ``jwksUri``, served by a real aiohttp server on 127.0.0.1:0: the first
fetch, a key rotation picked up on an unknown ``kid`` (rate-limited), an outage that keeps the
last good keys, endpoints that hang or answer garbage, and what ``/config_dump`` and the
metrics show. The request path never waits for any of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway_core.server.app import Gateway
from tests.conftest import free_port
from tests.functional.support import capture_upstream, config, get, metric_samples
from tests.gateway_core.security.jwt_kit import ISSUER, KeyPair, jwks
from tests.helpers import GatewayHarness


class JwksServer:
    """``mode``: ``ok`` (serve ``document``), ``garbage``, ``500`` or ``hang``."""

    def __init__(self, document: str) -> None:
        self.document = document
        self.mode = "ok"
        self.hits = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.mode == "hang":
            await asyncio.sleep(30)
        if self.mode == "garbage":
            return web.Response(body=b"\x00<html>not json", content_type="text/html")
        if self.mode == "500":
            return web.Response(status=500, text="down")
        return web.Response(text=self.document, content_type="application/json")

    async def start(self) -> JwksServer:
        app = web.Application()
        app.router.add_get("/jwks.json", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"


@pytest.fixture
async def jwks_server() -> AsyncIterator[Callable[[str], Any]]:
    servers: list[JwksServer] = []

    async def start(document: str) -> JwksServer:
        server = await JwksServer(document).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.runner is not None
        await server.runner.cleanup()


def _config(port: int, upstream: int, uri: str) -> str:
    rules = "  - route: [{destination: {host: v1.svc}}]"
    return (
        config(port, rules, {"v1.svc": [upstream]})
        + f"""---
apiVersion: security.istio.io/v1beta1
kind: RequestAuthentication
metadata: {{name: jwt}}
spec:
  jwtRules:
  - issuer: {ISSUER}
    jwksUri: {uri}
    timeout: 0.5s
"""
    )


async def _gateway(tmp_path: Any, text: str, **store: float) -> GatewayHarness:
    harness = GatewayHarness(tmp_path / "gw", text)
    harness.gateway = Gateway(harness.settings)
    keys = harness.gateway.runtime.jwt_keys
    for name, value in store.items():
        setattr(keys, name, value)
    await harness.start()
    return harness


async def _dump(harness: GatewayHarness) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(harness.admin + "/config_dump") as r:
        body: dict[str, Any] = await r.json()
        return body


async def _until(check: Callable[[], Any], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _token(pair: KeyPair) -> dict[str, str]:
    return {"Authorization": "Bearer " + pair.mint({"exp": int(time.time()) + 600})}


async def test_rotation_on_unknown_kid_is_rate_limited_and_outages_keep_keys(
    tmp_path: Any, jwks_server: Callable[[str], Any]
) -> None:
    old, new = KeyPair.make("RSA", "old"), KeyPair.make("EC", "new")
    # The first answer also holds a symmetric key and a second key with the kid "old".
    hostile = [{"kty": "oct", "kid": "old", "k": "c2VjcmV0"}, KeyPair.make("RSA", "old").jwk()]
    server = await jwks_server(jwks(old, extra_keys=hostile))
    async with capture_upstream() as up:
        port = free_port()
        harness = await _gateway(
            tmp_path, _config(port, up.port, server.uri), min_refresh_gap=0.3, retry_interval=0.2
        )
        try:
            # Applying the configuration waited for the first fetch.
            assert server.hits == 1
            notes = (await _dump(harness))["jwks"][0]["notes"]
            assert len(notes) == 2 and "'oct' is not supported" in notes[0]
            assert "repeats" in notes[1]
            token = _token(old)
            assert (await get(port, "/", headers=token)).status == 200
            assert (await get(port, "/", headers=token)).status == 200  # remembered signature
            # The issuer rotates: a token with the new kid is refused at once (never waits),
            # and asks for a refresh; a burst of them fetches at most once per gap.
            server.document = jwks(new)
            started = time.monotonic()
            statuses = [(await get(port, "/", headers=_token(new))).status for _ in range(20)]
            assert time.monotonic() - started < 2.0
            assert statuses[0] == 401

            async def rotated() -> bool:
                return (await get(port, "/", headers=_token(new))).status == 200

            await _until(rotated)
            # The old key is gone: its token, accepted (and its signature remembered) before,
            # is refused now.
            resp = await get(port, "/", headers=_token(old))
            assert (resp.status, resp.body) == (
                401,
                b"Jwks doesn't have key to match kid or alg from Jwt",
            )
            assert server.hits <= 2 + int((time.monotonic() - started) / 0.3) + 1
            # Outage: garbage, errors and a hanging endpoint; the last good keys stay.
            for mode in ("garbage", "500", "hang"):
                server.mode = mode
                before = (await _dump(harness))["jwks"][0]["fetches_failed"]
                stranger = _token(KeyPair.make("RSA", "unknown"))

                async def failed_again(before: int = before, stranger: Any = stranger) -> bool:
                    # Each unknown kid asks for a refresh (honoured once per gap).
                    await get(port, "/", headers=stranger)
                    return bool((await _dump(harness))["jwks"][0]["fetches_failed"] > before)

                await _until(failed_again)
                t0 = time.monotonic()
                assert (await get(port, "/", headers=_token(new))).status == 200, mode
                assert time.monotonic() - t0 < 0.5  # never waits on the hanging fetch
            state = (await _dump(harness))["jwks"][0]
            assert state["uri"] == server.uri
            assert state["keys"] == [{"kid": "new", "kty": "EC", "algorithms": ["ES256"]}]
            assert state["last_error"] == "no answer within 0.5s"
            assert state["fetches_ok"] >= 2
            samples = await metric_samples(harness.admin)
            labels = (("result", "failure"), ("uri", server.uri))
            assert samples[("gateway_jwks_fetch_total", labels)] >= 3
            assert samples[("gateway_jwks_keys", (("uri", server.uri),))] == 1
            filters = (await _dump(harness))["gateway_filters"]
            (jwt,) = [f for f in filters if f["kind"] == "JwtAuthnSpec"]
            assert jwt["rules"][0]["jwks_uri"] == server.uri
        finally:
            await harness.close()


async def test_keys_never_fetched_answer_401_at_once_then_recover(
    tmp_path: Any, jwks_server: Callable[[str], Any]
) -> None:
    pair = KeyPair.make("OKP", "ed")
    server = await jwks_server(jwks(pair))
    server.mode = "garbage"
    async with capture_upstream() as up:
        port = free_port()
        harness = await _gateway(
            tmp_path, _config(port, up.port, server.uri), retry_interval=0.2, min_refresh_gap=10
        )
        try:
            resp = await get(port, "/", headers=_token(pair))
            assert (resp.status, resp.body) == (401, b"Jwks remote fetch is failed")
            assert (await get(port, "/")).status == 200  # no token: still served
            dump = (await _dump(harness))["jwks"][0]
            assert dump["keys"] is None
            assert "not valid JSON" in dump["last_error"]
            server.mode = "ok"

            async def recovered() -> bool:
                return (await get(port, "/", headers=_token(pair))).status == 200

            await _until(recovered)
        finally:
            await harness.close()
