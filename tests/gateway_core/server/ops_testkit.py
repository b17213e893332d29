"""Helpers for the operational tests: gateway subprocesses, bounded load loops, polling."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[3]


class GatewayProcess:
    """``python -m tierN_gateway run ...`` as a child process with its own stderr log file."""

    def __init__(self, tier: str, config: list[Path], admin_port: int, log: Path, *extra: str):
        self.admin_port = admin_port
        self.log = log
        self._log_handle = open(log, "w")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                f"{tier}_gateway",
                "run",
                "--config",
                *map(str, config),
                "--admin-address",
                f"127.0.0.1:{admin_port}",
                "--access-log",
                "off",
                "--watch-interval",
                "0.1",
                *extra,
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._log_handle,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def wait_ready(self, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(f"gateway exited early:\n{self.log.read_text()}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with s.get(self.admin + "/ready") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"gateway not ready in {within}s:\n{self.log.read_text()}")

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._log_handle.close()


async def admin_json(gateway: GatewayProcess, path: str) -> dict[str, object]:
    async with aiohttp.ClientSession() as s, s.get(gateway.admin + path) as r:
        data = await r.json()
        assert isinstance(data, dict)
        return data


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {within}s waiting for {what}")


@dataclass
class LoadResult:
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    bodies: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def failures(self) -> int:
        return sum(v for k, v in self.statuses.items() if not 200 <= k < 300) + sum(
            self.errors.values()
        )


@contextlib.asynccontextmanager
async def constant_load(
    url: str,
    *,
    workers: int = 6,
    max_requests: int = 20000,
    max_seconds: float = 60.0,
    headers: dict[str, str] | None = None,
    ssl: object = None,
    new_connection_every: int = 0,
    keep_bodies: bool = True,
    resolver: aiohttp.abc.AbstractResolver | None = None,
) -> AsyncIterator[LoadResult]:
    """Closed-loop GET load, bounded in count and time. Every request's outcome is counted."""
    result = LoadResult()
    stop = asyncio.Event()
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        session: aiohttp.ClientSession | None = None
        sent = 0
        try:
            while not stop.is_set() and result.total < max_requests and time.monotonic() < deadline:
                if session is None or (new_connection_every and sent % new_connection_every == 0):
                    if session is not None:
                        await session.close()
                    session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(
                            ssl=ssl,  # type: ignore[arg-type]
                            limit=1,
                            resolver=resolver,
                        ),
                        timeout=aiohttp.ClientTimeout(total=10),
                    )
                sent += 1
                try:
                    async with session.get(url, headers=headers) as r:
                        body = await r.text()
                        result.statuses[r.status] += 1
                        if keep_bodies:
                            result.bodies.append(body)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    result.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
        finally:
            if session is not None:
                await session.close()

    tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
    try:
        yield result
    finally:
        stop.set()
        await asyncio.gather(*tasks)
