"""Control path (lab): the ``failover`` and ``gateway-loss`` scenarios (cluster-1 loses capacity).

failover (seed 001): cluster-1's Tier-2 sends ``/user`` to 14 local pods (priority 0) and 4
cluster-2 pods (priority 1) with outlier detection. Local pods fail one by one; once the
gateway has ejected the new failure, the share served locally is measured next to Envoy's
prediction ``min(100, 140 * healthy // 14)``.

gateway-loss: a steady stream of ``/user`` through Tier-1's nearest-cluster route while
cluster-1's Tier-2 is killed; Tier-1's health checks and outlier detection move traffic to the
next locality. Failures are counted before and after detection (after must be 0), then the
gateway is restarted and traffic returns.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from typing import Any

from gateway_core.utils.tasks import spawn
from gateway_lab.scenario_kit import (
    LabContext,
    Reply,
    ScenarioError,
    percent,
    priority_summary,
    verdict,
    within,
)
from gateway_lab.topology import GatewayNode

FAILOVER_CLUSTER = "cluster-1"
FAILOVER_SERVICE = "user"
FAILOVER_TOLERANCE = 8.0
OVERPROVISIONING = 140
EJECTION_TIMEOUT = 20.0
STREAM_INTERVAL = 0.02
DETECTION_TIMEOUT = 30.0
RETURN_TIMEOUT = 90.0
_HEADER = {"X-CLUSTER-SELECTOR": FAILOVER_CLUSTER}


def predicted_local(healthy: int, total: int) -> int:
    """Envoy's priority-0 load when priority 1 is fully healthy: ``min(100, 140*h//total)``."""
    return min(100, OVERPROVISIONING * healthy // total) if total else 0


def user_cluster_key(clusters: dict[str, Any], service: str) -> str:
    for key in clusters:
        if key.endswith(f"||{service}.bookinfo.svc.cluster.local"):
            return key
    raise ScenarioError(f"no cluster for the {service} service in {sorted(clusters)}")


FAILOVER_COLUMNS = ("healthy", "local", "remote", "failed", "local %", "Envoy", "remote %", "Envoy")


async def failover(ctx: LabContext) -> int:
    cluster = ctx.topology.cluster(FAILOVER_CLUSTER)
    gateway = cluster.gateway
    pods = [p for p in ctx.topology.pod_instances(cluster.name) if p.service == FAILOVER_SERVICE]
    ctx.say(
        f"failover: GET /{FAILOVER_SERVICE} on {cluster.name} via Tier-1, {ctx.requests} "
        f"requests per step; {len(pods)} local pods fail one by one"
    )
    addresses = [(p.host, p.port) for p in pods]
    if not await _all_healthy(ctx, gateway, len(pods)):
        ctx.say(f"{gateway.name} still has ejected hosts from an earlier run: restoring first")
        await _restore(ctx, gateway, addresses)
    rows: list[list[object]] = []
    try:
        for failed in range(len(pods) + 1):
            if failed:
                host, port = addresses[failed - 1]
                await ctx.pod_call(host, port, "/admin/fail?status=503")
                await _warm_until_ejected(ctx, gateway, f"{host}:{port}")
            rows.append(await _measure_step(ctx, gateway, len(pods) - failed, len(pods)))
    finally:
        await _restore(ctx, gateway, addresses)
    ctx.table([*FAILOVER_COLUMNS, "", "live priorities"], rows)
    ctx.say(f"tolerance ±{FAILOVER_TOLERANCE:.0f} points; Envoy = min(100, 140*healthy//14)")
    return 0 if all(row[-2] == verdict(True) for row in rows) else 1


async def _measure_step(
    ctx: LabContext, gateway: GatewayNode, healthy: int, total: int
) -> list[object]:
    """One table row: who answered ``ctx.requests`` requests, next to Envoy's prediction."""
    replies = await ctx.many(ctx.requests, f"/{FAILOVER_SERVICE}", _HEADER)
    by_cluster = Counter(r.cluster if r.ok else "failed" for r in replies)
    local = percent(by_cluster[FAILOVER_CLUSTER], len(replies))
    expected = predicted_local(healthy, total)
    good = within(local, expected, FAILOVER_TOLERANCE) and by_cluster["failed"] == 0
    state = await ctx.admin(gateway, "/clusters")
    levels = priority_summary(state[user_cluster_key(state, FAILOVER_SERVICE)])
    remote = len(replies) - by_cluster[FAILOVER_CLUSTER] - by_cluster["failed"]
    ctx.say(f"  {healthy:>2} healthy: local {local:5.1f}% (Envoy {expected:>3}%)  {levels}")
    counts = [healthy, by_cluster[FAILOVER_CLUSTER], remote, by_cluster["failed"]]
    shares = [f"{local:.1f}", expected, f"{100 - local:.1f}", 100 - expected]
    return [*counts, *shares, verdict(good), levels]


async def _warm_until_ejected(ctx: LabContext, gateway: GatewayNode, host: str) -> None:
    """The first 503 ejects the pod (it reaches the client: Istio 1.24+ retries no 503 by
    default, and warm-up replies are not counted): send traffic until it is ejected.

    One request at a time: several in flight to the failing pod would bring Tier-1 several
    503s in a row, and Tier-1 ejects a Tier-2 gateway after 3 consecutive gateway errors
    (``deploy/lab/tier1/tier2-gateways.yaml``), failing the next step's every request for
    its 30 s ejection. Sequential requests bring it at most one."""

    async def ejected() -> bool:
        await ctx.many(ctx.concurrency, f"/{FAILOVER_SERVICE}", _HEADER, concurrency=1)
        state = await ctx.admin(gateway, "/clusters")
        hosts = state[user_cluster_key(state, FAILOVER_SERVICE)]["hosts"]
        return any(f"{h['address']}:{h['port']}" == host and h["ejected"] for h in hosts)

    await ctx.wait_for(f"{gateway.name} to eject {host}", ejected, EJECTION_TIMEOUT, 0.0)


async def _restore(ctx: LabContext, gateway: GatewayNode, pods: list[tuple[str, int]]) -> None:
    """Recover the pods, then restart the gateway: its ejections would last baseEjectionTime."""
    for host, port in pods:
        await ctx.pod_call(host, port, "/admin/recover")
    ctx.say(f"pods recovered; restarting {gateway.name} to clear its 5m ejections")
    await ctx.control.kill(gateway.name, "KILL")
    await ctx.control.start(gateway.name)

    async def rediscovered() -> bool:
        return await _all_healthy(ctx, gateway, len(pods))

    await ctx.wait_for(f"{gateway.name} to rediscover its pods", rediscovered, 30.0)
    await ctx.wait_settled()
    state = await ctx.admin(gateway, "/clusters")
    ctx.say(f"restored: {priority_summary(state[user_cluster_key(state, FAILOVER_SERVICE)])}")


async def _all_healthy(ctx: LabContext, gateway: GatewayNode, local: int) -> bool:
    """At least ``local`` hosts discovered for the service, none ejected."""
    state = await ctx.admin(gateway, "/clusters")
    hosts = state.get(user_cluster_key(state, FAILOVER_SERVICE), {}).get("hosts", [])
    return len(hosts) >= local and all(h["healthy"] for h in hosts)


# ---- gateway loss ---------------------------------------------------------------------------


class Stream:
    """Sends ``GET path`` every ``interval`` seconds, each in its own task, keeping every reply."""

    def __init__(self, ctx: LabContext, path: str, interval: float = STREAM_INTERVAL) -> None:
        self.ctx = ctx
        self.path = path
        self.interval = interval
        self.replies: list[Reply] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = spawn(self._run(), name="gateway-loss stream")

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._tasks.append(spawn(self._one(), name="gateway-loss request"))
            await asyncio.sleep(self.interval)

    async def _one(self) -> None:
        self.replies.append(await self.ctx.get(self.path))

    def sent_since(self, moment: float) -> int:
        return sum(1 for r in self.replies if r.started >= moment)

    async def stop(self) -> None:
        self._stop.set()
        if self._runner is not None:
            await self._runner
        await asyncio.gather(*self._tasks)


async def gateway_loss(ctx: LabContext) -> int:
    victim = ctx.topology.cluster(FAILOVER_CLUSTER).gateway
    ctx.say(
        f"gateway-loss: GET /{FAILOVER_SERVICE} via Tier-1 (no header: nearest cluster) every "
        f"{STREAM_INTERVAL * 1000:.0f} ms; {victim.name} is killed, then restarted"
    )
    stream = Stream(ctx, f"/{FAILOVER_SERVICE}")
    stream.start()
    events: dict[str, float] = {}
    try:
        await _lose_and_restore(ctx, victim, stream, events)
    finally:
        await stream.stop()
        status = await ctx.control.status()
        if not any(p["alive"] for p in status["processes"] if p["name"] == victim.name):
            await ctx.control.start(victim.name)
    return _report_loss(ctx, stream.replies, events)


async def _lose_and_restore(
    ctx: LabContext, victim: GatewayNode, stream: Stream, events: dict[str, float]
) -> None:
    await asyncio.sleep(2.0)
    events["kill"] = time.monotonic()
    await ctx.control.kill(victim.name, "KILL")

    async def down() -> bool:
        return await _unhealthy_on_tier1(ctx, victim.address)

    took = await ctx.wait_for(f"Tier-1 to mark {victim.name} down", down, DETECTION_TIMEOUT, 0.05)
    events["detected"] = events["kill"] + took

    async def enough() -> bool:
        return stream.sent_since(events["detected"]) >= ctx.requests

    await ctx.wait_for(f"{ctx.requests} requests after detection", enough, DETECTION_TIMEOUT)
    await ctx.control.start(victim.name)
    events["restarted"] = time.monotonic()

    async def returned() -> bool:
        since = events["restarted"]
        return any(
            r.ok and r.cluster == victim.cluster and r.started >= since for r in stream.replies
        )

    await ctx.wait_for(f"traffic to return to {victim.cluster}", returned, RETURN_TIMEOUT)
    events["returned"] = time.monotonic()
    await asyncio.sleep(1.0)


async def _unhealthy_on_tier1(ctx: LabContext, address: str) -> bool:
    """Detection: a Tier-1 cluster of the Tier-2 gateways shows ``address`` not healthy."""
    clusters = await ctx.admin(ctx.topology.tier1, "/clusters")
    return any(
        h["address"] == address and not h["healthy"]
        for state in clusters.values()
        for h in state["hosts"]
    )


def per_second(replies: list[Reply], events: dict[str, float]) -> list[list[object]]:
    """One row per second relative to the kill: sent, answered per cluster, failed, events."""
    kill = events["kill"]
    clusters = sorted({r.cluster for r in replies if r.ok})
    buckets: dict[int, list[Reply]] = {}
    for r in replies:
        buckets.setdefault(math.floor(r.started - kill), []).append(r)
    rows: list[list[object]] = []
    for second in sorted({*buckets, *(math.floor(t - kill) for t in events.values())}):
        window = buckets.get(second, [])
        counts = Counter(r.cluster if r.ok else "failed" for r in window)
        marks = " ".join(n for n, t in events.items() if math.floor(t - kill) == second)
        by_cluster = [counts[c] for c in clusters]
        rows.append([f"{second:+d}s", len(window), *by_cluster, counts["failed"], marks])
    return rows


def _report_loss(ctx: LabContext, replies: list[Reply], events: dict[str, float]) -> int:
    kill, detected = events["kill"], events["detected"]
    restarted, returned = events["restarted"], events["returned"]
    clusters = sorted({r.cluster for r in replies if r.ok})
    ctx.table(["t", "sent", *clusters, "failed", "event"], per_second(replies, events))
    first_moved = min(
        (
            r.started
            for r in replies
            if r.ok and r.started >= kill and r.cluster != FAILOVER_CLUSTER
        ),
        default=None,
    )
    before = sum(1 for r in replies if not r.ok and kill <= r.started < detected)
    after = sum(1 for r in replies if not r.ok and r.started >= detected)
    served = Counter(r.cluster for r in replies if r.ok and detected <= r.started < restarted)
    moved_text = "never" if first_moved is None else f"{first_moved - kill:.2f}s after the kill"
    ctx.say(f"detection: {detected - kill:.2f}s after the kill (Tier-1 /clusters: host unhealthy)")
    ctx.say(f"traffic moved: {moved_text}; served until the restart: {dict(served)}")
    ctx.say(f"failed before detection: {before}; failed after detection: {after} (must be 0)")
    ctx.say(f"traffic back on {FAILOVER_CLUSTER} {returned - restarted:.2f}s after the restart")
    ok = after == 0 and first_moved is not None and FAILOVER_CLUSTER not in served
    ctx.say(f"result: {verdict(ok)}")
    return 0 if ok else 1
