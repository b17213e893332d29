"""Functional: LocalRateLimit through a real gateway on loopback.

A burst over the limit gets 429 ``local_rate_limited`` with ``retry-after`` and the
``x-ratelimit-*`` fields, flag ``RL`` and the metric; the bucket refills after its interval;
per-client buckets follow X-Forwarded-For only within the trusted hops; per-header buckets; a
route limit leaves other routes alone; buckets survive a reload that keeps the limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.functional.h2client import H2Client
from tests.functional.support import (
    RawResponse,
    access_lines,
    capture_upstream,
    config,
    connect,
    get,
    metric_samples,
    read_response,
)

API = "gateway.multicluster.dev/v1alpha1"
RULES = """  - name: api
    match: [{uri: {prefix: /api}}]
    route: [{destination: {host: app.local}}]
  - name: other
    directResponse: {status: 200, body: {string: other}}
"""


def limit(name: str, bucket: str, extra: str = "") -> str:
    return f"""---
apiVersion: {API}
kind: LocalRateLimit
metadata: {{name: {name}}}
spec:
  tokenBucket: {bucket}
{extra}"""


def gateway_config(port: int, upstream: int, *limits: str) -> str:
    return config(port, RULES, {"app.local": [upstream]}, extra="".join(limits))


async def burst(port: int, n: int, path: str = "/api/x", **headers: str) -> list[RawResponse]:
    """``n`` requests on one keep-alive connection, back to back."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: h\r\n{extra}\r\n".encode()
    out = []
    async with connect(port) as (reader, writer):
        for _ in range(n):
            writer.write(request)
            out.append(await read_response(reader, within=5.0))
    return out


async def statuses(port: int, n: int, path: str = "/api/x", **headers: str) -> list[int]:
    return [r.status for r in await burst(port, n, path, **headers)]


async def test_burst_over_the_limit_gets_429_then_the_bucket_refills(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "access.log"
    bucket = "{maxTokens: 3, tokensPerFill: 1, fillInterval: 2s}"
    async with capture_upstream() as up:
        gw = await gateway(gateway_config(port, up.port, limit("all", bucket)), access_log=str(log))
        started = time.monotonic()
        responses = await burst(port, 5)
        assert [r.status for r in responses] == [200, 200, 200, 429, 429]
        assert len(up.requests) == 3  # refused requests never reach the upstream
        refused = responses[3]
        assert refused.body == b"local_rate_limited"
        assert refused.header(b"x-ratelimit-limit") == b"3"
        assert refused.header(b"x-ratelimit-remaining") == b"0"
        reset = int(refused.header(b"x-ratelimit-reset") or b"0")
        assert 1 <= reset <= 2
        assert refused.header(b"retry-after") == refused.header(b"x-ratelimit-reset")
        assert responses[0].header(b"x-ratelimit-limit") is None  # allowed: no fields

        # Poll (bounded) until the bucket refills: one token per 2 s, not before.
        deadline = started + 10.0
        while (await get(port, "/api/x")).status == 429:
            assert time.monotonic() < deadline, "the bucket never refilled"
            await asyncio.sleep(0.05)
        assert time.monotonic() - started >= 2.0
        assert (await get(port, "/api/x")).status == 429  # one fill: one token

        samples = await metric_samples(gw.admin)
        limited = (
            "gateway_ratelimit_rq_total",
            (("limit", "default/all"), ("result", "rate_limited")),
        )
        ok = ("gateway_ratelimit_rq_total", (("limit", "default/all"), ("result", "ok")))
        assert samples[ok] == 4
        assert samples[limited] >= 3
        assert samples[("gateway_response_flags_total", (("flag", "RL"),))] == samples[limited]
        lines = access_lines(gw)
        assert [line["flags"] for line in lines if line["status"] == 429] == ["RL"] * int(
            samples[limited]
        )


async def test_per_client_buckets_follow_xff_within_the_trusted_hops(
    gateway: Callable[..., Any],
) -> None:
    port, behind = free_port(), free_port()
    per_ip = limit(
        "per-ip", "{maxTokens: 1, fillInterval: 60s}", "  descriptor: {remoteAddress: {}}\n"
    )
    async with capture_upstream() as up:
        await gateway(gateway_config(port, up.port, per_ip), xff_trusted_hops=1)
        xff = "x-forwarded-for"
        assert await statuses(port, 2, **{xff: "198.51.100.1"}) == [200, 429]
        assert await statuses(port, 1, **{xff: "198.51.100.2"}) == [200]
        # The trusted proxy appends the address it saw: what a client wrote before it is not
        # the client's address.
        assert await statuses(port, 1, **{xff: "203.0.113.7, 198.51.100.1"}) == [429]
        # An edge that trusts no proxy ignores X-Forwarded-For: one client, one bucket.
        await gateway(gateway_config(behind, up.port, per_ip), xff_trusted_hops=0)
        assert await statuses(behind, 1, **{xff: "198.51.100.3"}) == [200]
        assert await statuses(behind, 1, **{xff: "198.51.100.4"}) == [429]


async def test_per_header_buckets_and_requests_without_the_header(
    gateway: Callable[..., Any],
) -> None:
    port = free_port()
    per_key = limit(
        "per-key",
        "{maxTokens: 2, fillInterval: 60s}",
        "  descriptor: {requestHeader: {name: x-api-key}}\n  maxKeys: 100\n",
    )
    async with capture_upstream() as up:
        gw = await gateway(gateway_config(port, up.port, per_key))
        assert await statuses(port, 3, **{"x-api-key": "alpha"}) == [200, 200, 429]
        assert await statuses(port, 3, **{"X-Api-Key": "beta"}) == [200, 200, 429]
        assert await statuses(port, 3) == [200, 200, 429]  # no header: one shared bucket
        samples = await metric_samples(gw.admin)
        assert samples[("gateway_ratelimit_keys", (("limit", "default/per-key"),))] == 3


async def test_a_route_limit_leaves_other_routes_alone(gateway: Callable[..., Any]) -> None:
    port = free_port()
    route_limit = limit(
        "api", "{maxTokens: 1, fillInterval: 60s}", "  virtualService: vs\n  route: api\n"
    )
    async with capture_upstream() as up:
        await gateway(gateway_config(port, up.port, route_limit))
        assert await statuses(port, 2, "/api/x") == [200, 429]
        assert await statuses(port, 3, "/other") == [200, 200, 200]


async def test_buckets_survive_a_reload_that_keeps_the_limit(gateway: Callable[..., Any]) -> None:
    port = free_port()
    bucket = "{maxTokens: 2, fillInterval: 60s}"
    async with capture_upstream() as up:
        gw = await gateway(gateway_config(port, up.port, limit("all", bucket)))
        assert await statuses(port, 3) == [200, 200, 429]
        # Another change: the limit is the same, so its empty bucket is kept.
        text = gateway_config(port, up.port, limit("all", bucket)).replace("other", "changed")
        before = gw.gateway.runtime.snapshot.version
        gw.write_config(text)
        assert await gw.gateway.reload()
        assert gw.gateway.runtime.snapshot.version != before  # a new configuration is live
        assert await statuses(port, 1) == [429]
        # A changed limit starts with a full bucket.
        gw.write_config(text.replace("maxTokens: 2", "maxTokens: 3"))
        assert await gw.gateway.reload()
        assert await statuses(port, 4) == [200, 200, 200, 429]


async def test_http2_clients_are_limited_per_stream(gateway: Callable[..., Any]) -> None:
    """Each HTTP/2 stream is a request and takes a token; the 429 carries the same fields."""
    port = free_port()
    async with capture_upstream() as up:
        await gateway(
            gateway_config(port, up.port, limit("all", "{maxTokens: 2, fillInterval: 60s}"))
        )
        client = await H2Client.connect(port)
        try:
            responses = [
                await client.response(client.request("GET", "h", "/api/x"), within=5.0)
                for _ in range(3)
            ]
        finally:
            await client.close()
        assert [r.status for r in responses] == [200, 200, 429]
        assert bytes(responses[2].body) == b"local_rate_limited"
        assert responses[2].header(b"x-ratelimit-limit") == b"2"
        assert responses[2].header(b"retry-after") is not None
