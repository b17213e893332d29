"""Control path (lab): what every lab scenario uses — traffic through Tier-1, admin reads, tables.

Requests go to Tier-1's HTTP listener with ``Host: bookinfo.example.com:<port>`` (what curl's
``--resolve`` does), without a cookie jar so a scenario decides exactly which cookies it sends.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from gateway_lab.control import ControlClient
from gateway_lab.topology import HOSTNAME, GatewayNode, Topology

TIER2_KEY = "outbound|{port}||{host}"


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: str
    started: float
    """Monotonic time the request was sent."""
    error: str | None = None
    set_cookies: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def cluster(self) -> str:
        return str(self.json().get("cluster") or self.headers.get("x-demo-cluster", "?"))


@dataclass
class LabContext:
    topology: Topology
    workdir: Path
    control: ControlClient
    session: aiohttp.ClientSession
    requests: int
    out: TextIO = field(default_factory=lambda: sys.stdout)
    concurrency: int = 8

    @property
    def tier1_port(self) -> int:
        return self.topology.tier1.port_for("HTTP") or 80

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Reply:
        url = f"http://{self.topology.tier1.address}:{self.tier1_port}{path}"
        sent = {"Host": f"{HOSTNAME}:{self.tier1_port}", **(headers or {})}
        started = time.monotonic()
        try:
            async with self.session.get(url, headers=sent, allow_redirects=False) as resp:
                body = await resp.text()
                cookies = tuple(resp.headers.getall("Set-Cookie", []))
                return Reply(resp.status, dict(resp.headers), body, started, set_cookies=cookies)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Reply(0, {}, "", started, error=f"{type(exc).__name__}: {exc}")

    async def many(
        self,
        count: int,
        path: str,
        headers: Mapping[str, str] | None = None,
        concurrency: int | None = None,
    ) -> list[Reply]:
        """``count`` requests, ``concurrency`` (default ``self.concurrency``) at a time."""
        gate = asyncio.Semaphore(concurrency or self.concurrency)

        async def one() -> Reply:
            async with gate:
                return await self.get(path, headers)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def admin(self, gw: GatewayNode, path: str) -> dict[str, Any]:
        url = f"http://{gw.admin[0]}:{gw.admin[1]}{path}"
        async with self.session.get(url) as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def pod_call(self, host: str, port: int, path: str) -> None:
        async with self.session.post(f"http://{host}:{port}{path}") as resp:
            if resp.status != 200:
                raise RuntimeError(f"pod {host}:{port}{path} answered {resp.status}")

    async def wait_for(
        self, what: str, check: Callable[[], Awaitable[bool]], limit: float, interval: float = 0.2
    ) -> float:
        """Poll ``check`` until true; the seconds it took, or ``ScenarioError`` after ``limit``."""
        started = time.monotonic()
        while not await check():
            if time.monotonic() - started > limit:
                raise ScenarioError(f"timed out after {limit:.0f}s waiting for {what}")
            await asyncio.sleep(interval)
        return time.monotonic() - started

    async def wait_settled(self, limit: float = 30.0) -> None:
        """Every Tier-1 host healthy: a previous scenario's restart must not skew this one."""

        async def settled() -> bool:
            clusters = await self.admin(self.topology.tier1, "/clusters")
            return all(h["healthy"] for c in clusters.values() for h in c["hosts"])

        await self.wait_for("Tier-1 to see every Tier-2 gateway healthy", settled, limit)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        self.say(format_table(headers, rows))


class ScenarioError(Exception):
    """The scenario could not measure (lab missing a piece, timeout); it fails with exit 1."""


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def within(measured: float, expected: float, tolerance: float) -> bool:
    return abs(measured - expected) <= tolerance


def verdict(ok: bool) -> str:
    return "ok" if ok else "OFF"


def priority_summary(state: Mapping[str, Any]) -> str:
    """``P0 14/14 load 100 | P1 4/4 load 0`` from one cluster of an admin ``/clusters``."""
    parts = []
    for lvl in state.get("priorities", []):
        panic = " PANIC" if lvl.get("panic") else ""
        parts.append(
            f"P{lvl['priority']} {lvl['healthy']}/{lvl['hosts']} load {lvl['load']}{panic}"
        )
    return " | ".join(parts) or "(no hosts)"
