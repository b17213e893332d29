"""Functional: Istio's own end-user authentication task (../shared/istio-samples/security) through
a real gateway: the YAML loads unchanged except for the ``jwksUri`` (there is no internet, so
Istio's public ``jwks.json`` is served from 127.0.0.1), Istio's test tokens, and the outcomes the
docs state for the JWT cases. The AuthorizationPolicy outcomes belong to that feature's tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from gateway_core.server.app import Gateway
from tests.conftest import free_port
from tests.functional.support import capture_upstream, get
from tests.helpers import GatewayHarness, shared_path

SAMPLES = "istio-samples/security"
ISTIO_JWKS_URI = (
    "https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json"
)
DEMO_EXP = 4685989700
"""``exp`` of demo.jwt (the samples' README)."""


def _gateway_yaml(port: int, upstream: int) -> str:
    """The task's Gateway and VirtualService on a free port, and where httpbin runs here."""
    text = shared_path(f"{SAMPLES}/httpbin-gateway.yaml").read_text()
    text = text.replace("number: 80\n", f"number: {port}\n")
    return (
        text
        + f"""
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: httpbin, namespace: foo}}
spec:
  hosts: [httpbin.foo.svc.cluster.local]
  ports: [{{number: 8000, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1, ports: {{http: {upstream}}}}}]
"""
    )


def _token(name: str) -> str:
    return shared_path(f"{SAMPLES}/{name}").read_text().strip()


async def _serve_jwks(document: str) -> tuple[web.AppRunner, str]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/jwks.json"


async def _reload(harness: GatewayHarness, text: str) -> None:
    harness.write_config(text)
    async with aiohttp.ClientSession() as s, s.post(harness.admin + "/reload") as r:
        assert r.status == 200, await r.text()


async def _status(port: int, token: str | None = None, path: str = "/headers") -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return (await get(port, path, host="httpbin.example.com", headers=headers)).status


async def test_end_user_authentication_task(tmp_path: Path) -> None:
    """The task's table: gateway only → 200; with the RequestAuthentication: no token 200,
    ``deadbeef`` 401, demo.jwt 200 (and groups-scope.jwt 200); once demo.jwt has expired
    (the injected clock past its ``exp``), 401."""
    policy = shared_path(f"{SAMPLES}/ingress-jwt-requestauthentication.yaml").read_text()
    assert ISTIO_JWKS_URI in policy
    runner, uri = await _serve_jwks(shared_path(f"{SAMPLES}/jwks.json").read_text())
    now = [time.time()]
    async with capture_upstream() as httpbin:
        port = free_port()
        base = _gateway_yaml(port, httpbin.port)
        harness = GatewayHarness(tmp_path / "gw", base, labels={"istio": "ingressgateway"})
        harness.gateway = Gateway(harness.settings, wall_clock=lambda: now[0])
        await harness.start()
        try:
            assert await _status(port) == 200
            assert await _status(port, "deadbeef") == 200  # no RequestAuthentication yet
            await _reload(harness, base + "---\n" + policy.replace(ISTIO_JWKS_URI, uri))
            assert await _status(port) == 200
            assert await _status(port, "deadbeef") == 401
            assert await _status(port, _token("demo.jwt")) == 200
            assert await _status(port, _token("groups-scope.jwt")) == 200
            assert await _status(port, _token("demo.jwt"), "/ip") == 200
            now[0] = DEMO_EXP + 61  # past exp and Envoy's 60 s of clock skew
            assert await _status(port, _token("demo.jwt")) == 401
            assert len(httpbin.requests) == 6
            forwarded = httpbin.requests[-1]
            assert forwarded.header(b"authorization") is None
        finally:
            await harness.close()
            await runner.cleanup()


async def test_inline_jwks_and_the_selector(gateway: Callable[..., Any]) -> None:
    """The same rule with the keys inline (``jwks:``, as the samples' README suggests); the
    policy's ``selector`` (``istio: ingressgateway``) only applies to a gateway with that label."""
    policy = shared_path(f"{SAMPLES}/ingress-jwt-requestauthentication.yaml").read_text()
    keys = shared_path(f"{SAMPLES}/jwks.json").read_text().strip()
    inline = policy.replace(f'jwksUri: "{ISTIO_JWKS_URI}"', f"jwks: '{keys}'")
    assert inline != policy
    async with capture_upstream() as httpbin:
        labelled, unlabelled = free_port(), free_port()
        await gateway(
            _gateway_yaml(labelled, httpbin.port) + "---\n" + inline,
            labels={"istio": "ingressgateway"},
        )
        await gateway(_gateway_yaml(unlabelled, httpbin.port) + "---\n" + inline)
        assert await _status(labelled, "deadbeef") == 401
        assert await _status(labelled, _token("demo.jwt")) == 200
        assert await _status(unlabelled, "deadbeef") == 200  # the policy selects no gateway here
