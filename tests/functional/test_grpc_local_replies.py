"""Functional: the gateway's own answers to gRPC requests are trailers-only gRPC errors (real
gateway and pods on 127.0.0.1; HTTP/1.1 clients here, HTTP/2 in test_http2_downstream.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import config

GRPC = {"content-type": "application/grpc", "te": "trailers"}
RULES = """  - match: [{uri: {prefix: /faulty}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: echo.local}}]
  - match: [{uri: {prefix: /delay}}]
    timeout: 5s
    route: [{destination: {host: echo.local}}]"""


async def _post(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}{path}", data=b"\0\0\0\0\0", headers=headers) as r,
    ):
        return r.status, {k.lower(): v for k, v in r.headers.items()}, await r.read()


async def test_no_route_is_unimplemented_and_fault_grpc_status_applies(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    pod = await pods("echo")
    port = free_port()
    await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    status, headers, body = await _post(port, "/nothing/here", GRPC)
    assert (status, headers["grpc-status"], body) == (200, "12", b"")
    assert headers["content-type"] == "application/grpc"
    # abort.grpcStatus: gRPC clients get the status; others get HTTP 200 (Envoy's fault filter).
    status, headers, _ = await _post(port, "/faulty", GRPC)
    assert (status, headers["grpc-status"]) == (200, "14")
    status, headers, body = await _post(port, "/faulty", {})
    assert status == 200
    assert "grpc-status" not in headers
    assert body == b"fault filter abort\n"
    # A plain HTTP client still gets the HTTP status of a local reply.
    status, headers, _ = await _post(port, "/nothing/here", {})
    assert status == 404
    assert "grpc-status" not in headers


async def test_grpc_timeout_is_honoured_within_the_route_timeout(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """grpc-timeout 300m on a route with timeout 5s: DEADLINE_EXCEEDED after ~0.3 s; a
    grpc-timeout beyond the route timeout is capped by it (not tested by waiting 5 s)."""
    pod = await pods("echo")
    port = free_port()
    await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    started = time.monotonic()
    status, headers, _ = await _post(port, "/delay/3", {**GRPC, "grpc-timeout": "300m"})
    elapsed = time.monotonic() - started
    assert (status, headers["grpc-status"]) == (200, "4")
    assert elapsed < 2.5
