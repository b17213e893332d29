"""Functional: Istio ``consistentHash`` through a real gateway (cookie minting, source IP)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import config


def _config(port: int, pod_ports: list[int], hash_key: str) -> str:
    rule = "  - route: [{destination: {host: app.local}}]"
    rule_set = f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: app}}
spec:
  host: app.local
  trafficPolicy:
    loadBalancer:
      consistentHash: {hash_key}
"""
    return config(port, rule, {"app.local": pod_ports}, extra=rule_set)


async def test_generated_cookie_differs_per_connection_and_pins_the_pod(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """Each new connection gets its own minted cookie (Envoy: remote and local address with
    ports); requests carrying a cookie always reach the same pod; cookie-less ones spread."""
    handles = [await pods("echo", pod=f"p{i}") for i in range(3)]
    port = free_port()
    await gateway(
        _config(port, [h.port for h in handles], "{httpCookie: {name: session, ttl: 60s}}")
    )
    url = f"http://127.0.0.1:{port}/echo"
    cookies: dict[str, str] = {}
    for _ in range(30):
        async with aiohttp.ClientSession() as s, s.get(url) as r:  # a new connection each time
            value = r.cookies["session"].value
            cookies[value] = (await r.json())["pod"]
    assert len(cookies) == 30, "every connection mints its own cookie"
    assert len(set(cookies.values())) == 3, "minted cookies spread over the pods"
    for value, pod in list(cookies.items())[:5]:
        async with aiohttp.ClientSession() as s:
            for _ in range(5):
                async with s.get(url, headers={"cookie": f"session={value}"}) as r:
                    assert (await r.json())["pod"] == pod
                    assert "session" not in r.cookies, "no new cookie when one was sent"


async def test_source_ip_behind_a_trusted_hop_hashes_the_forwarded_client(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """With one trusted hop, useSourceIp hashes the client from X-Forwarded-For, not the proxy."""
    handles = [await pods("echo", pod=f"p{i}") for i in range(3)]
    port = free_port()
    await gateway(
        _config(port, [h.port for h in handles], "{useSourceIp: true}"), xff_trusted_hops=1
    )
    url = f"http://127.0.0.1:{port}/echo"
    chosen: dict[str, set[str]] = collections.defaultdict(set)
    async with aiohttp.ClientSession() as s:
        for i in range(40):
            client = f"10.0.0.{i % 20}"
            async with s.get(url, headers={"x-forwarded-for": client}) as r:
                chosen[client].add((await r.json())["pod"])
    assert all(len(p) == 1 for p in chosen.values()), "one client, one pod"
    assert len({next(iter(p)) for p in chosen.values()}) == 3, "clients spread over the pods"
