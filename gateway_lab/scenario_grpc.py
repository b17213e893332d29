"""Control path (lab): the ``grpc`` scenario — per-request balancing versus a TCP relay (seed 002).

One grpcio channel (one HTTP/2 connection) makes the unary ``demo.v1.Demo/Hello`` calls twice:
(a) through Tier-1's plaintext listener with ``:authority grpc.example.com`` and
``x-cluster-selector: cluster-2``, so Tier-1 and cluster-2's Tier-2 pick a pod for every call;
(b) through a plain TCP relay (gateway_lab.tcp_relay, started by the scenario on 127.0.0.1) in
front of the same three cluster-2 pods, which picks a pod once per connection. It passes when
each pod gets a third of (a) within ±10 points and one pod gets all of (b). A leg whose call
fails stops at the first failure and reports its gRPC status and details.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from gateway_lab.demo_pod import GRPC_ROLE
from gateway_lab.grpc_client import ChannelSpec, open_channel, rpc_error, selector_metadata
from gateway_lab.proto import demo_pb2, demo_pb2_grpc
from gateway_lab.scenario_kit import LabContext, ScenarioError, percent, verdict, within
from gateway_lab.tcp_relay import TcpRelay

GRPC_CLUSTER = "cluster-2"
GRPC_AUTHORITY = "grpc.example.com"
GRPC_CALLS = 300
SHARE_TOLERANCE = 10.0
CONCURRENCY = 8
CALL_TIMEOUT = 5.0
HTTP1_ANSWER = "http1.x server"
"""What grpcio says when the peer answers its HTTP/2 preface in HTTP/1.1."""


@dataclass(slots=True)
class Leg:
    """What one leg measured: replies per pod, and the first failure if a call failed."""

    name: str
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    @property
    def answered(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class Check:
    what: str
    ok: bool


async def unary_leg(
    name: str,
    channel: grpc.aio.Channel,
    calls: int,
    metadata: Sequence[tuple[str, str]] = (),
    concurrency: int = CONCURRENCY,
) -> Leg:
    """``calls`` Hello calls on ``channel``, ``concurrency`` in flight; none after a failure."""
    stub = demo_pb2_grpc.DemoStub(channel)
    leg = Leg(name)
    gate = asyncio.Semaphore(concurrency)
    request = demo_pb2.HelloRequest(name="scenario grpc")
    md = tuple(metadata)
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            if errors:
                return
            try:
                reply = await stub.Hello(request, metadata=md, timeout=CALL_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                errors.append(rpc_error(exc))
                return
            leg.counts[reply.pod.name] += 1

    await asyncio.gather(*(one() for _ in range(calls)))
    leg.error = errors[0] if errors else None
    return leg


def judge(pods: Sequence[str], gateway: Leg, relay: Leg, calls: int) -> list[Check]:
    """The scenario's pass conditions, on what the two legs measured."""
    expected = 100.0 / len(pods) if pods else 0.0
    spread = all(within(percent(gateway.counts[p], calls), expected, SHARE_TOLERANCE) for p in pods)
    busiest = max(relay.counts.values(), default=0)
    return [
        Check(f"via gateway: {gateway.answered}/{calls} calls answered", _all(gateway, calls)),
        Check(
            f"via gateway: each of {len(pods)} pods {expected:.1f}% ±{SHARE_TOLERANCE:.0f}",
            _all(gateway, calls) and spread,
        ),
        Check(f"via relay: {relay.answered}/{calls} calls answered", _all(relay, calls)),
        Check(
            f"via relay: one pod served {busiest}/{calls}", _all(relay, calls) and busiest == calls
        ),
    ]


def _all(leg: Leg, calls: int) -> bool:
    return leg.error is None and leg.answered == calls


def table_rows(pods: Sequence[str], gateway: Leg, relay: Leg, calls: int) -> list[list[object]]:
    """pod, calls via gateway, share, calls via relay, share; pods outside ``pods`` too."""
    names = [*pods, *sorted((set(gateway.counts) | set(relay.counts)) - set(pods))]
    return [
        [
            n,
            gateway.counts[n],
            f"{percent(gateway.counts[n], calls):.1f}%",
            relay.counts[n],
            f"{percent(relay.counts[n], calls):.1f}%",
        ]
        for n in names
    ]


async def grpc_balancing(ctx: LabContext) -> int:
    instances = [p for p in ctx.topology.pod_instances(GRPC_CLUSTER) if p.role == GRPC_ROLE]
    if not instances:
        raise ScenarioError(f"the topology has no {GRPC_ROLE} pods in {GRPC_CLUSTER}")
    pods = [p.name for p in instances]
    calls = ctx.requests
    tier1 = ctx.topology.tier1
    target = f"{tier1.address}:{ctx.tier1_port}"
    ctx.say(
        f"grpc: {calls} unary calls over one channel, {CONCURRENCY} in flight, "
        f"to the {len(pods)} gRPC pods of {GRPC_CLUSTER}"
    )
    ctx.say(
        f"(a) via gateway: {target}, authority {GRPC_AUTHORITY}, "
        f"x-cluster-selector: {GRPC_CLUSTER} (Tier-1 -> Tier-2 -> pods)"
    )
    gateway = await _measure(
        "gateway",
        ChannelSpec(target, authority=GRPC_AUTHORITY),
        calls,
        selector_metadata(GRPC_CLUSTER),
    )
    relay_server = TcpRelay([(p.host, p.port) for p in instances])
    host, port = await relay_server.start()
    try:
        ctx.say(
            f"(b) via relay: {host}:{port}, a TCP relay that picks a pod per connection "
            f"(round robin over {', '.join(f'{p.host}:{p.port}' for p in instances)})"
        )
        relay = await _measure("relay", ChannelSpec(f"{host}:{port}"), calls)
    finally:
        await relay_server.close()
    for leg in (gateway, relay):
        if leg.error is not None:
            ctx.say(f"via {leg.name}: a call failed after {leg.answered} answers: {leg.error}")
            if HTTP1_ANSWER in leg.error:
                ctx.say(f"  {target} answered in HTTP/1.1: gRPC needs HTTP/2 on every hop")
    ctx.table(
        ["pod", "via gateway", "share", "via relay", "share"],
        table_rows(pods, gateway, relay, calls),
    )
    checks = judge(pods, gateway, relay, calls)
    for check in checks:
        ctx.say(f"{check.what}: {verdict(check.ok)}")
    return 0 if all(c.ok for c in checks) else 1


async def _measure(
    name: str, spec: ChannelSpec, calls: int, metadata: Sequence[tuple[str, str]] = ()
) -> Leg:
    channel = open_channel(spec)
    try:
        return await unary_leg(name, channel, calls, metadata)
    finally:
        await channel.close()
