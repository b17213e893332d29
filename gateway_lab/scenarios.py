"""Control path (lab): ``gateway-lab scenario NAME`` — measured experiments over the running lab.

Each scenario prints what it measured as a table and returns 0 when every value is within its
stated tolerance of the expected one, else 1 (also 1 when the lab is not running or ready).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import aiohttp

from gateway_lab.control import ControlClient, LabNotRunning
from gateway_lab.scenario_failover import failover, gateway_loss
from gateway_lab.scenario_grpc import GRPC_CALLS, grpc_balancing
from gateway_lab.scenario_kit import LabContext, ScenarioError
from gateway_lab.scenario_traffic import canary, sticky
from gateway_lab.topology import Topology

Scenario = Callable[[LabContext], Awaitable[int]]
SCENARIOS: dict[str, Scenario] = {
    "canary": canary,
    "sticky": sticky,
    "failover": failover,
    "gateway-loss": gateway_loss,
    "grpc": grpc_balancing,
}
DEFAULT_REQUESTS = 200
SCENARIO_REQUESTS = {"grpc": GRPC_CALLS}
"""Scenarios whose measurement has its own default size (``--requests`` overrides it)."""


async def run_scenario(
    name: str, topology: Topology, *, requests: int | None = None, out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    if requests is None:
        requests = SCENARIO_REQUESTS.get(name, DEFAULT_REQUESTS)
    control = ControlClient(topology.control)
    try:
        status = await control.status()
    except LabNotRunning as exc:
        print(f"scenario {name}: {exc}; start it with: gateway-lab up", file=out)
        return 1
    if not status.get("ready"):
        down = [p["name"] for p in status["processes"] if not p["ready"]]
        print(f"scenario {name}: the lab is not ready (not ready: {', '.join(down)})", file=out)
        return 1
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=64, force_close=False)
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
    ) as session:
        ctx = LabContext(
            topology=topology,
            workdir=Path(status["workdir"]),
            control=control,
            session=session,
            requests=requests,
            out=out,
        )
        try:
            await ctx.wait_settled()
            code = await SCENARIOS[name](ctx)
        except ScenarioError as exc:
            ctx.say(f"scenario {name} could not measure: {exc}")
            return 1
    print(f"scenario {name}: {'PASS' if code == 0 else 'FAIL'}", file=out, flush=True)
    return code
