"""Functional: the loop guard (``x-gateway-hops``) between real gateways on loopback.

Two gateways that route to each other answer 508 ``LD`` at once instead of circling, over
HTTP/1.1 and HTTP/2 upstreams; a chain longer than ``max_gateway_hops`` is refused; what an
untrusted client writes in the header is dropped and never causes a 508.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway_core.routing.loop_guard import hop_tag
from tests.conftest import free_port
from tests.functional.h2client import H2Client
from tests.functional.support import (
    capture_upstream,
    gateway_yaml,
    get,
    metric_samples,
    service_entry,
)

HOPS = b"x-gateway-hops"


def forward(port: int, to_port: int, *, protocol: str = "HTTP") -> str:
    """A gateway on ``port`` that sends every request to 127.0.0.1:``to_port``."""
    return (
        gateway_yaml(port)
        + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: next.local}}]
"""
        + service_entry("next.local", [to_port], protocol=protocol)
    )


def entry(gateway_id: str, secret: bytes) -> bytes:
    return gateway_id.encode() + b";" + hop_tag(secret, gateway_id.encode())


async def flags(admin: str) -> dict[str, float]:
    samples = await metric_samples(admin)
    return {
        dict(labels)["flag"]: value
        for (name, labels), value in samples.items()
        if name == "gateway_response_flags_total"
    }


async def test_two_gateways_routing_to_each_other_answer_508(
    gateway: Callable[..., Any],
) -> None:
    """Tier-1 A (trusts no proxy) → Tier-2 B (trusts A) → back to A's public port: A finds its
    own entry, though B is an untrusted peer to it, and answers 508 LD."""
    a_port, b_port = free_port(), free_port()
    a = await gateway(forward(a_port, b_port), tier="tier1", gateway_id="gw-a")
    b = await gateway(forward(b_port, a_port), gateway_id="gw-b", xff_trusted_hops=1)
    started = time.monotonic()
    response = await get(a_port, "/loop")
    assert time.monotonic() - started < 3.0
    assert response.status == 508
    assert b"loop detected" in response.body
    assert (await flags(a.admin)).get("LD") == 1  # the request came round once, no more
    assert "LD" not in await flags(b.admin)
    async with aiohttp.ClientSession() as session, session.get(a.admin + "/config_dump") as r:
        node = (await r.json())["node"]
    assert (node["gateway_id"], node["max_gateway_hops"]) == ("gw-a", 8)
    assert "hop_secret" not in node


async def test_a_loop_over_http2_upstreams_is_caught_too(gateway: Callable[..., Any]) -> None:
    """The same loop with HTTP/2 between the gateways (h2c), and an HTTP/2 client."""
    a_port, b_port = free_port(), free_port()
    a = await gateway(forward(a_port, b_port, protocol="HTTP2"), tier="tier1", gateway_id="a")
    await gateway(forward(b_port, a_port, protocol="HTTP2"), gateway_id="b", xff_trusted_hops=1)
    client = await H2Client.connect(a_port)
    try:
        response = await client.response(client.request("GET", "h", "/loop"), within=5.0)
    finally:
        await client.close()
    assert response.status == 508
    assert (await flags(a.admin)).get("LD") == 1


async def test_two_edges_sharing_the_hop_secret_see_each_others_entries(
    gateway: Callable[..., Any],
) -> None:
    """Two internet-facing gateways (neither trusts its peer) that forward to each other: with
    a shared hop secret each keeps the other's entry, and the loop is caught."""
    a_port, b_port = free_port(), free_port()
    shared = {"hop_secret": b"k" * 32, "tier": "tier1"}
    await gateway(forward(a_port, b_port), gateway_id="edge-a", **shared)
    await gateway(forward(b_port, a_port), gateway_id="edge-b", **shared)
    assert (await get(a_port, "/loop")).status == 508


async def test_each_gateway_appends_its_entry_over_http1_and_http2(
    gateway: Callable[..., Any],
) -> None:
    """A →(HTTP/2) B →(HTTP/1.1) upstream: the upstream sees A's then B's entry."""
    a_port, b_port = free_port(), free_port()
    async with capture_upstream() as up:
        a = await gateway(forward(a_port, b_port, protocol="HTTP2"), gateway_id="a", tier="tier1")
        b = await gateway(forward(b_port, up.port), gateway_id="b", xff_trusted_hops=1)
        assert (await get(a_port, "/x")).status == 200
        [seen] = up.requests
        expected = entry("a", a.settings.hop_secret) + b", " + entry("b", b.settings.hop_secret)
        assert seen.all(HOPS) == [expected]


async def test_forged_hops_from_an_untrusted_client_are_dropped(
    gateway: Callable[..., Any],
) -> None:
    port = free_port()
    async with capture_upstream() as up:
        gw = await gateway(forward(port, up.port), gateway_id="gw-a", tier="tier1")
        own = entry("gw-a", gw.settings.hop_secret)
        forged = ", ".join(["gw-a", "gw-a;0123456789abcdef", *[f"gw-{i};00" for i in range(30)]])
        response = await get(port, "/x", headers={"X-Gateway-Hops": forged})
        assert response.status == 200
        response = await get(port, "/x", headers={"x-gateway-hops": "gw-a, gw-a"})
        assert response.status == 200
        assert [r.all(HOPS) for r in up.requests] == [[own], [own]]
        assert "LD" not in await flags(gw.admin)


async def test_a_chain_longer_than_max_hops_is_refused(gateway: Callable[..., Any]) -> None:
    """A → B → C, C allows 2 gateway hops before it: C refuses; with 3 the chain passes."""
    a_port, b_port, c_port = free_port(), free_port(), free_port()
    async with capture_upstream() as up:
        await gateway(forward(a_port, b_port), gateway_id="a", tier="tier1")
        await gateway(forward(b_port, c_port), gateway_id="b", xff_trusted_hops=1)
        c = await gateway(
            forward(c_port, up.port), gateway_id="c", xff_trusted_hops=1, max_gateway_hops=2
        )
        response = await get(a_port, "/x")
        assert response.status == 508
        assert b"too many gateway hops" in response.body
        assert up.requests == []
        assert (await flags(c.admin)).get("LD") == 1

    a2, b2, c2 = free_port(), free_port(), free_port()
    async with capture_upstream() as up:
        await gateway(forward(a2, b2), gateway_id="a", tier="tier1")
        await gateway(forward(b2, c2), gateway_id="b", xff_trusted_hops=1)
        await gateway(forward(c2, up.port), gateway_id="c", xff_trusted_hops=1, max_gateway_hops=3)
        assert (await get(a2, "/x")).status == 200
        [seen] = up.requests
        assert [e.split(b";")[0] for e in (seen.header(HOPS) or b"").split(b", ")] == [
            b"a",
            b"b",
            b"c",
        ]
