"""Control path (lab): the ``canary`` and ``sticky`` scenarios (cluster-2, through Tier-1).

canary: an override VirtualService in ``WORKDIR/overrides/cluster-2/`` splits exact ``/hello``
between the helloworld subsets v1/v2 (DestinationRule in deploy/lab/tier2); for each split the
scenario waits for cluster-2's Tier-2 to load a new config version, then counts the versions
that answer. sticky: Istio's ``consistentHash.httpCookie`` on the echo service — the first
response sets ``user-session`` and every request carrying it reaches the same pod, while
requests without it spread over the pods.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from gateway_lab.scenario_kit import (
    LabContext,
    Reply,
    ScenarioError,
    percent,
    verdict,
    within,
)
from gateway_lab.topology import GatewayNode

CANARY_CLUSTER = "cluster-2"
CANARY_FILE = "canary-helloworld.yaml"
CANARY_SPLITS = ((90, 10), (50, 50), (0, 100))
CANARY_TOLERANCE = 7.0
RELOAD_TIMEOUT = 20.0
STICKY_CLUSTER = "cluster-2"
STICKY_COOKIE = "user-session"
STICKY_FOLLOWERS = 20
SPREAD_CONCURRENCY = 32
_HELLO = re.compile(r"Hello version: (\S+), instance: (\S+)")


def canary_virtual_service(v1: int, v2: int) -> dict[str, Any]:
    def destination(subset: str, weight: int) -> dict[str, Any]:
        return {
            "destination": {"host": "helloworld", "subset": subset, "port": {"number": 5000}},
            "weight": weight,
        }

    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "helloworld-canary", "namespace": "bookinfo"},
        "spec": {
            "hosts": ["bookinfo.example.com"],
            "gateways": ["bookinfo/bookinfo-gateway"],
            "http": [
                {
                    "name": "helloworld-canary",
                    "match": [{"uri": {"exact": "/hello"}}],
                    "route": [destination("v1", v1), destination("v2", v2)],
                }
            ],
        },
    }


def hello_version(reply: Reply) -> str:
    if not reply.ok:
        return f"HTTP {reply.status}" if reply.status else "error"
    found = _HELLO.search(reply.body)
    return found.group(1) if found else "?"


def split_ok(v1: int, v2: int, counts: Counter[str], total: int) -> bool:
    """Exact for an all-or-nothing split, else each share within the tolerance."""
    if v1 == 0 or v2 == 0:
        return counts["v1" if v2 == 0 else "v2"] == total
    return within(percent(counts["v1"], total), v1, CANARY_TOLERANCE) and within(
        percent(counts["v2"], total), v2, CANARY_TOLERANCE
    )


async def canary(ctx: LabContext) -> int:
    gateway = ctx.topology.cluster(CANARY_CLUSTER).gateway
    path = ctx.workdir / "overrides" / CANARY_CLUSTER / CANARY_FILE
    header = {"X-CLUSTER-SELECTOR": CANARY_CLUSTER}
    ctx.say(f"canary: GET /hello on {CANARY_CLUSTER} via Tier-1, {ctx.requests} per split")
    ctx.say(f"override file: {path}")
    rows: list[list[object]] = []
    ok = True
    try:
        for v1, v2 in CANARY_SPLITS:
            took = await apply_override(ctx, gateway, path, canary_virtual_service(v1, v2))
            replies = await ctx.many(ctx.requests, "/hello", header)
            counts = Counter(hello_version(r) for r in replies)
            good = split_ok(v1, v2, counts, len(replies))
            ok &= good
            other = len(replies) - counts["v1"] - counts["v2"]
            measured = f"{percent(counts['v1'], len(replies)):.1f}/"
            measured += f"{percent(counts['v2'], len(replies)):.1f}"
            tolerance = "exact" if 0 in (v1, v2) else f"±{CANARY_TOLERANCE:.0f}"
            row = [f"{v1}/{v2}", f"{took:.1f}s", counts["v1"], counts["v2"], other, measured]
            rows.append([*row, tolerance, verdict(good)])
    finally:
        if path.exists():
            await apply_override(ctx, gateway, path, None)
            ctx.say(f"removed {path.name}: {CANARY_CLUSTER} is back to the deploy/lab routes")
    ctx.table(["split v1/v2", "reload", "v1", "v2", "other", "v1/v2 %", "tolerance", ""], rows)
    return 0 if ok else 1


async def apply_override(
    ctx: LabContext, gateway: GatewayNode, path: Path, doc: dict[str, Any] | None
) -> float:
    """Write (or with ``doc=None`` delete) an override and wait for a new config version."""
    before = (await ctx.admin(gateway, "/config_dump"))["version"]
    await asyncio.to_thread(write_override, path, doc)
    error: list[str] = []

    async def reloaded() -> bool:
        dump = await ctx.admin(gateway, "/config_dump")
        if dump.get("last_reload_error"):
            error.append(str(dump["last_reload_error"]))
            return True
        return bool(dump["version"] != before)

    took = await ctx.wait_for(f"{gateway.name} to load {path.name}", reloaded, RELOAD_TIMEOUT)
    if error:
        raise ScenarioError(f"{gateway.name} rejected {path.name}:\n{error[0]}")
    return took


def write_override(path: Path, doc: dict[str, Any] | None) -> None:
    if doc is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    # Atomic: the gateway's file watcher must never read half a file.
    tmp.replace(path)


def session_cookie(reply: Reply) -> str | None:
    for raw in reply.set_cookies:
        name, _, rest = raw.partition("=")
        if name.strip() == STICKY_COOKIE:
            return rest.split(";", 1)[0]
    return None


async def sticky(ctx: LabContext) -> int:
    header = {"X-CLUSTER-SELECTOR": STICKY_CLUSTER}
    pods = [p for p in ctx.topology.pod_instances(STICKY_CLUSTER) if p.service == "echo"]
    ctx.say(f"sticky: GET /echo on {STICKY_CLUSTER} via Tier-1 ({len(pods)} echo pods)")
    first = await ctx.get("/echo", header)
    cookie = session_cookie(first)
    if not first.ok or cookie is None:
        raise ScenarioError(
            f"the first response ({first.status or first.error}) set no {STICKY_COOKIE} cookie; "
            f"Set-Cookie: {list(first.set_cookies)}"
        )
    pod = str(first.json().get("pod"))
    ctx.say(f"first response: pod {pod}, Set-Cookie {STICKY_COOKIE}={cookie}")
    followers = [
        await ctx.get("/echo", {**header, "Cookie": f"{STICKY_COOKIE}={cookie}"})
        for _ in range(STICKY_FOLLOWERS)
    ]
    with_cookie = Counter(str(r.json().get("pod")) if r.ok else "failed" for r in followers)
    # Many connections at once: Envoy mints the cookie per downstream connection, so new users
    # arrive as new connections (Tier-1 opens one upstream connection per concurrent request).
    without = await ctx.many(ctx.requests, "/echo", header, concurrency=SPREAD_CONCURRENCY)
    spread = Counter(str(r.json().get("pod")) if r.ok else "failed" for r in without)
    names = sorted({p.name for p in pods} | set(with_cookie) | set(spread))
    ctx.table(
        ["pod", f"{STICKY_FOLLOWERS} with the cookie", f"{len(without)} without"],
        [[n, with_cookie[n], spread[n]] for n in names],
    )
    stuck = with_cookie[pod] == STICKY_FOLLOWERS
    spread_ok = all(spread[p.name] > 0 for p in pods) and spread["failed"] == 0
    ctx.say(f"with the cookie: {with_cookie[pod]}/{STICKY_FOLLOWERS} on {pod}: {verdict(stuck)}")
    ctx.say(
        f"without it: {sum(1 for p in pods if spread[p.name])}/{len(pods)} pods used: "
        f"{verdict(spread_ok)}"
    )
    return 0 if stuck and spread_ok else 1
