"""Functional: a real Tier-2 gateway on 127.0.0.1 forwarding HTTP to demo pods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import config


def echo_config(gw_port: int, pod_ports: list[int]) -> str:
    rules = """  - match: [{uri: {prefix: /echo}}]
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {exact: /direct}}]
    directResponse: {status: 418, body: {string: "teapot"}}"""
    return config(gw_port, rules, {"echo.local": pod_ports})


async def test_forwards_to_pod_and_sets_forwarding_headers(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """A request is forwarded to the pod with X-Forwarded-* and x-request-id set."""
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    await gateway(echo_config(port, [pod.port]))
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://127.0.0.1:{port}/echo/x?a=1", headers={"Host": "demo.example.com"}) as r,
    ):
        assert r.status == 200
        body = await r.json()
    assert body["pod"] == "p1"
    assert body["path"] == "/echo/x"
    headers = {k.lower(): v for k, v in body["headers"].items()}
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == "demo.example.com"
    assert len(headers["x-request-id"]) == 36


async def test_no_route_gives_404(pods: Callable[..., Any], gateway: Callable[..., Any]) -> None:
    """An unmatched path answers 404 locally."""
    pod = await pods("echo")
    port = free_port()
    await gateway(echo_config(port, [pod.port]))
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/nothing") as r:
        assert r.status == 404
        assert "no route" in await r.text()
