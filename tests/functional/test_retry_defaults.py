"""Functional: Istio's retry defaults (1.24 and later) through a real gateway on loopback.

Without a ``retries`` block, and with a block that leaves ``retryOn`` out, a 503 from the pod is
passed on after one request, while a connect failure and a gRPC ``unavailable`` or ``cancelled``
(``grpc-status`` in the response head) are retried. A rule whose only destination balances by
consistent hash retries on the host its hash picks, unless ``retryIgnorePreviousHosts`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.support import (
    Handler,
    RawRequest,
    access_lines,
    capture_upstream,
    config,
    get,
)
from tests.helpers import GatewayHarness

ROUTE = "route: [{destination: {host: up.svc}}]"
# (the rule, the retries Istio allows it)
POLICIES = {
    "no retries block": (f"  - {ROUTE}", 2),
    "retries without retryOn": (f"  - retries: {{attempts: 3}}\n    {ROUTE}", 3),
}


async def start(
    gateway: Callable[..., Any], tmp_path: Path, rules: str, ports: list[int], extra: str = ""
) -> tuple[int, GatewayHarness]:
    port = free_port()
    log = tmp_path / f"access-{port}.log"
    harness = await gateway(
        config(port, rules, {"up.svc": ports}, extra=extra), access_log=str(log)
    )
    return port, harness


def answer(*heads: bytes) -> Handler:
    """Answer the n-th request with ``heads[n]`` (the last one from then on), no body."""
    seen = 0

    async def respond(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
        nonlocal seen
        writer.write(heads[min(seen, len(heads) - 1)] + b"content-length: 0\r\n\r\n")
        seen += 1
        return True

    return respond


UNAVAILABLE_503 = b"HTTP/1.1 503 Service Unavailable\r\n"


@pytest.mark.parametrize("policy", sorted(POLICIES))
async def test_a_503_from_the_pod_is_not_retried(
    gateway: Callable[..., Any], tmp_path: Path, policy: str
) -> None:
    """Istio 1.24+ retries no status code by default: one request reaches the pod, the client
    gets its 503, and the access log shows one attempt."""
    rules, _ = POLICIES[policy]
    async with capture_upstream(answer(UNAVAILABLE_503, b"HTTP/1.1 200 OK\r\n")) as up:
        port, harness = await start(gateway, tmp_path, rules, [up.port])
        resp = await get(port, "/busy")
    assert resp.status == 503
    assert len(up.requests) == 1
    (line,) = access_lines(harness)
    assert (line["status"], line["attempts"]) == (503, 1)


@pytest.mark.parametrize("policy", sorted(POLICIES))
async def test_a_connect_failure_is_retried(
    gateway: Callable[..., Any], tmp_path: Path, policy: str
) -> None:
    """connect-failure is a default condition: with only a refused host every allowed retry is
    made (then 503 UF); with a live host beside it every request succeeds."""
    rules, retries = POLICIES[policy]
    dead = free_port()
    port, harness = await start(gateway, tmp_path, rules, [dead])
    resp = await get(port, "/dead")
    assert resp.status == 503
    (line,) = access_lines(harness)
    assert (line["flags"], line["attempts"]) == ("UF", 1 + retries)
    async with capture_upstream() as up:
        port, harness = await start(gateway, tmp_path, rules, [dead, up.port])
        statuses = [(await get(port, f"/{i}")).status for i in range(6)]
    assert statuses == [200] * 6
    assert len(up.requests) == 6
    assert max(line["attempts"] for line in access_lines(harness)) == 2


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize(
    ("grpc_status", "retried"), [(b"14", True), (b"1", True), (b"13", False), (b"0", False)]
)
async def test_grpc_status_in_the_response_head(
    gateway: Callable[..., Any], tmp_path: Path, policy: str, grpc_status: bytes, retried: bool
) -> None:
    """A trailers-only gRPC answer with grpc-status 14 (unavailable) or 1 (cancelled) is retried
    by default; 13 (internal) and 0 (ok) are not."""
    rules, _ = POLICIES[policy]
    first = b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: " + grpc_status
    later = b"HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: 0\r\n"
    async with capture_upstream(answer(first + b"\r\n", later)) as up:
        port, harness = await start(gateway, tmp_path, rules, [up.port])
        resp = await get(port, "/grpc.Svc/Call")
    assert resp.status == 200
    assert resp.header(b"grpc-status") == (b"0" if retried else grpc_status)
    assert len(up.requests) == (2 if retried else 1)
    (line,) = access_lines(harness)
    assert line["attempts"] == len(up.requests)


HASHED = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: up}
spec:
  host: up.svc
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
"""


@pytest.mark.parametrize(("ignore_previous", "spread"), [(None, False), (True, True)])
async def test_single_consistent_hash_destination_retries_on_the_hashed_host(
    gateway: Callable[..., Any], tmp_path: Path, ignore_previous: bool | None, spread: bool
) -> None:
    """By default (Istio: no previous-hosts predicate for one consistent-hash destination) all
    three attempts go to the host the hash picks; retryIgnorePreviousHosts: true moves on."""
    extra = "" if ignore_previous is None else ", retryIgnorePreviousHosts: true"
    rules = f"  - retries: {{attempts: 2, retryOn: '503'{extra}}}\n    {ROUTE}"
    async with (
        capture_upstream(answer(UNAVAILABLE_503)) as a,
        capture_upstream(answer(UNAVAILABLE_503)) as b,
    ):
        port, _ = await start(gateway, tmp_path, rules, [a.port, b.port], extra=HASHED)
        resp = await get(port, "/", headers={"x-user": "alice"})
    assert resp.status == 503
    counts = sorted((len(a.requests), len(b.requests)))
    assert counts == ([1, 2] if spread else [0, 3])
