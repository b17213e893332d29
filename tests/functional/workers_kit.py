"""Tests: a ``tier2-gateway run --workers N`` process tree, persistent clients, and which worker
process owns a client's connection (read from ``/proc``: the socket's inode in the worker's fds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.functional.support import RawResponse, read_response

REPO = Path(__file__).resolve().parents[2]


class GatewayTree:
    """The CLI as a real process tree: supervisor, fork server and workers."""

    def __init__(self, workdir: Path, yaml_text: str, workers: int = 2, *args: str) -> None:
        self.config = workdir / "config.yaml"
        self.config.write_text(yaml_text)
        self.log = workdir / "gateway.log"
        self.workers = workers
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin = ""
        self.seen_pids: set[int] = set()
        self.clients: list[Client] = []
        """Every client connection a test opened through this tree (closed by ``close``)."""

    async def start(self) -> GatewayTree:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once
                [sys.executable, "-m", "tier2_gateway", "run", "--config", str(self.config),
                 "--admin-address", "127.0.0.1:0", "--bind-address", "127.0.0.1",
                 "--access-log", "off", "--workers", str(self.workers),
                 "--drain-propagation", "0.2", "--drain-deadline", "3",
                 "--watch-interval", "60", "--admin-allow-unauthenticated-loopback",
                 *self.args],
                stdout=subprocess.DEVNULL, stderr=log, cwd=REPO,
            )  # fmt: skip
        marker = "ready (admin 127.0.0.1:"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if marker in text:
                port = text.split(marker, 1)[1].split(")", 1)[0]
                self.admin = f"http://127.0.0.1:{port}"
                return self
            assert self.proc.poll() is None, text
            await asyncio.sleep(0.05)
        raise AssertionError("gateway did not become ready:\n" + self.log.read_text())

    async def get_json(self, path: str) -> Any:
        async with aiohttp.ClientSession() as s, s.get(self.admin + path) as r:
            return await r.json()

    async def post(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s, s.post(self.admin + path) as r:
            return r.status, await r.json(content_type=None)

    async def workers_info(self) -> list[dict[str, Any]]:
        info: list[dict[str, Any]] = (await self.get_json("/config_dump"))["workers"]
        self.seen_pids |= {w["pid"] for w in info if w["pid"]}
        return info

    async def worker_pids(self) -> list[int]:
        return [w["pid"] for w in await self.workers_info()]

    def tree_pids(self) -> list[int]:
        """The supervisor's child processes (fork server) and their children (workers)."""
        assert self.proc is not None
        out: list[int] = []
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            for task in _listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    kids = [
                        int(k)
                        for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                    ]
                    out.extend(kids)
                    todo.extend(kids)
        return out

    async def close(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.seen_pids:  # never leave a worker behind a failed test
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's zombie waits for whatever reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def owner(pids: list[int], gateway_port: int, client_port: int) -> int | None:
    """The pid among ``pids`` holding the gateway side of the client's connection."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in _lines(table)[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == gateway_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                inodes.add(f"socket:[{fields[9]}]")
    for pid in pids:
        for fd in _listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
    return None


def _lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


class Client:
    """One persistent HTTP/1.1 connection (reconnects on ``reconnect``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> Client:
        self.close()
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    @property
    def local_port(self) -> int:
        assert self.writer is not None
        return int(self.writer.get_extra_info("sockname")[1])

    async def get(self, path: str = "/", within: float = 5.0) -> RawResponse:
        assert self.reader is not None and self.writer is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        await self.writer.drain()
        return await read_response(self.reader, within=within)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def clients_on_every_worker(
    tree: GatewayTree, port: int, count: int, path: str = "/"
) -> dict[int, list[Client]]:
    """``count`` connections (one request each, so the worker has accepted them) grouped by
    the worker that owns them; more are opened (bounded) until every worker has one."""
    pids = await tree.worker_pids()
    by_pid: dict[int, list[Client]] = {pid: [] for pid in pids}
    for attempt in range(count * 10):
        client = await Client(port).connect()
        tree.clients.append(client)
        await client.get(path)  # any answer: the worker has accepted the connection
        pid = owner(pids, port, client.local_port)
        assert pid is not None, "no worker owns the connection"
        by_pid[pid].append(client)
        if attempt + 1 >= count and all(by_pid.values()):
            return by_pid
    raise AssertionError(f"connections never reached every worker: {by_pid}")


async def poll(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Seconds until ``check`` holds (bounded by ``within``)."""
    start = time.monotonic()
    while time.monotonic() - start < within:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what}: not within {within}s")


async def named_upstream(
    name: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
) -> tuple[web.AppRunner, int]:
    """An upstream on 127.0.0.1 (port 0) answering its ``name``, or with ``handler``."""

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(text=name)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler or answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    return runner, int(server.sockets[0].getsockname()[1])


def prometheus_value(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def dumps(value: object) -> str:
    return json.dumps(value, indent=1)
