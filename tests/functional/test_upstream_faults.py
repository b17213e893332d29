"""Functional: upstream failures, timeouts, retries, invalid upstream framing and the access log.

Faults are staged with raw ``CaptureUpstream`` servers; the access log is written to a file and
each line's fields (status, response flags, attempts, upstream host) are checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.support import (
    CaptureUpstream,
    RawRequest,
    access_lines,
    capture_upstream,
    config,
    connect,
    get,
    read_response,
    send_raw,
)
from tests.helpers import GatewayHarness


async def start(
    gateway: Callable[..., Any],
    tmp_path: Path,
    rules: str,
    services: dict[str, list[int]],
    **settings: object,
) -> tuple[int, GatewayHarness]:
    port = free_port()
    log = tmp_path / f"access-{port}.log"
    harness = await gateway(config(port, rules, services), access_log=str(log), **settings)
    return port, harness


def delayed(seconds: float) -> Callable[[RawRequest, asyncio.StreamWriter], Any]:
    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(seconds)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow")
        return True

    return respond


async def test_connect_refused_is_503_uf(gateway: Callable[..., Any], tmp_path: Path) -> None:
    """A refused upstream connection answers 503 with flag UF and the reason in the body."""
    dead = free_port()
    rules = "  - route: [{destination: {host: dead.svc}}]"
    port, harness = await start(gateway, tmp_path, rules, {"dead.svc": [dead]})
    resp = await get(port, "/x")
    assert resp.status == 503
    assert b"connection refused" in resp.body
    (line,) = access_lines(harness)
    assert (line["status"], line["flags"], line["upstream_host"]) == (
        503,
        "UF",
        f"127.0.0.1:{dead}",
    )


async def test_route_timeout_is_504_ut(gateway: Callable[..., Any], tmp_path: Path) -> None:
    """A route ``timeout`` shorter than the upstream's answer gives 504 with flag UT."""
    async with capture_upstream(delayed(3.0)) as up:
        rules = "  - timeout: 0.2s\n    route: [{destination: {host: up.svc}}]"
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        resp = await get(port, "/t")
    assert resp.status == 504
    assert resp.body == b"upstream request timeout\n"
    (line,) = access_lines(harness)
    assert (line["status"], line["flags"], line["path"]) == (504, "UT", "/t")


async def test_per_try_timeout_retries_on_another_host(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """perTryTimeout abandons a silent host and the retry goes to the other host, which
    answers; the stale first attempt cannot touch the response."""
    calls: list[int] = []

    def handler(index: int) -> Callable[[RawRequest, asyncio.StreamWriter], Any]:
        async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
            calls.append(index)
            if len(calls) == 1:
                await asyncio.sleep(1.0)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
                return True
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfast")
            return True

        return respond

    one, two = await CaptureUpstream(handler(1)).start(), await CaptureUpstream(handler(2)).start()
    try:
        rules = """\
  - retries: {attempts: 2, perTryTimeout: 0.2s, retryOn: gateway-error}
    route: [{destination: {host: up.svc}}]"""
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [one.port, two.port]})
        resp = await get(port, "/")
    finally:
        await one.close()
        await two.close()
    assert (resp.status, resp.body) == (200, b"fast")
    assert sorted(calls) == [1, 2]
    (line,) = access_lines(harness)
    assert (line["status"], line["attempts"], line["flags"]) == (200, 2, "-")


async def test_per_try_timeout_without_retries_left_is_504(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """When every attempt times out the client gets 504 UT after attempts + 1 tries."""
    async with capture_upstream(delayed(2.0)) as up:
        rules = """\
  - retries: {attempts: 1, perTryTimeout: 0.1s, retryOn: 5xx}
    route: [{destination: {host: up.svc}}]"""
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        resp = await get(port, "/")
        await asyncio.sleep(0.05)
    assert resp.status == 504
    assert len(up.requests) == 2
    (line,) = access_lines(harness)
    assert (line["flags"], line["attempts"]) == ("UT", 2)


@pytest.mark.parametrize(
    ("method", "upstream_requests", "status"), [("GET", 2, 200), ("POST", 1, 503)]
)
async def test_listed_503_retried_for_idempotent_methods_only(
    gateway: Callable[..., Any], tmp_path: Path, method: str, upstream_requests: int, status: int
) -> None:
    """A retryOn listing 503 retries it; a POST that reached the upstream is never retried
    (RFC 9110 §9.2.2), so it gets the 503."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if len(up.requests) == 1:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with capture_upstream(respond) as up:
        rules = (
            "  - retries: {attempts: 2, retryOn: '503'}\n    route: [{destination: {host: up.svc}}]"
        )
        port, _ = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        body = b"Content-Length: 3\r\n\r\nabc" if method == "POST" else b"\r\n"
        (resp,), _ = await send_raw(
            port, method.encode() + b" / HTTP/1.1\r\nHost: h\r\n" + body, close_wait=0
        )
    assert resp.status == status
    assert len(up.requests) == upstream_requests


async def test_post_retried_after_connect_failure(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """A connect failure is retried on another host for any method: nothing was sent."""
    async with capture_upstream() as up:
        rules = "  - route: [{destination: {host: up.svc}}]"
        dead = free_port()
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [dead, up.port]})
        for _ in range(4):
            (resp,), _ = await send_raw(
                port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx", close_wait=0
            )
            assert resp.status == 200
    assert len(up.requests) == 4
    assert [r.body for r in up.requests] == [b"x"] * 4
    attempts = sorted(line["attempts"] for line in access_lines(harness))
    assert attempts[0] == 1 and attempts[-1] == 2


INVALID_RESPONSES = {
    "duplicate-content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    ),
    "invalid-content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
    "content-length-and-chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "oversize-header": b"HTTP/1.1 200 OK\r\nX-Big: "
    + b"a" * 70000
    + b"\r\nContent-Length: 2\r\n\r\nok",
    "garbage": b"HTTZ/9 abc\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(INVALID_RESPONSES))
async def test_invalid_upstream_response_is_502_and_connection_dropped(
    gateway: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    """An upstream response with invalid framing or an oversize head is never forwarded: the
    client gets 502 (flag UPE) and the upstream connection is not reused."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if req.target == b"/bad":
            writer.write(INVALID_RESPONSES[case])
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with capture_upstream(respond) as up:
        rules = "  - retries: {attempts: 0}\n    route: [{destination: {host: up.svc}}]"
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        async with connect(port) as (reader, writer):
            writer.write(b"GET /bad HTTP/1.1\r\nHost: h\r\n\r\n")
            bad = await read_response(reader)
            writer.write(b"GET /good HTTP/1.1\r\nHost: h\r\n\r\n")
            good = await read_response(reader)
    assert bad.status == 502
    assert good.status == 200
    assert up.connections == 2
    flags = [line["flags"] for line in access_lines(harness)]
    assert flags == ["UPE", "-"]


async def test_upstream_close_before_response_is_503_uc(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """An upstream that closes without answering gives 503 with flag UC (no retry for POST)."""

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        return False

    async with capture_upstream(respond) as up:
        rules = "  - route: [{destination: {host: up.svc}}]"
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        (resp,), _ = await send_raw(
            port, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx", close_wait=0
        )
    assert resp.status == 503
    assert len(up.requests) == 1
    (line,) = access_lines(harness)
    assert line["flags"] == "UC"


async def test_access_log_line_fields(gateway: Callable[..., Any], tmp_path: Path) -> None:
    """One JSON line per request with method, authority, path, status, duration, upstream
    host, cluster, route, flags (NR for no route) and the request id."""
    async with capture_upstream() as up:
        rules = "  - match: [{uri: {prefix: /ok}}]\n    route: [{destination: {host: up.svc}}]"
        port, harness = await start(gateway, tmp_path, rules, {"up.svc": [up.port]})
        await get(port, "/ok?q=1", host="a.example", headers={"X-Request-Id": "rid-1"})
        await get(port, "/missing", host="b.example")
    ok, missing = access_lines(harness)
    assert ok["method"] == "GET"
    assert ok["authority"] == "a.example"
    assert ok["path"] == "/ok?q=1"
    assert ok["status"] == 200
    assert ok["flags"] == "-"
    assert ok["upstream_host"] == f"127.0.0.1:{up.port}"
    assert "up.svc" in ok["cluster"]
    assert ok["route"] == "default/vs/http[0]"
    assert ok["request_id"] == "rid-1"
    assert ok["bytes_sent"] == 2
    assert ok["duration_ms"] >= 0
    assert (missing["status"], missing["flags"], missing["upstream_host"]) == (404, "NR", "-")


async def test_health_path_answered_locally(gateway: Callable[..., Any]) -> None:
    """/healthz/ready is answered by the gateway on every data listener (200 when ready)."""
    port = free_port()
    harness = await gateway(config(port, "  - route: [{destination: {host: x.svc}}]", {}))
    resp = await get(port, "/healthz/ready")
    assert (resp.status, resp.body) == (200, b"ready\n")
    harness.gateway.runtime.draining = True
    resp = await get(port, "/healthz/ready")
    assert resp.status == 503
