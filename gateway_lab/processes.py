"""Control path (lab): one supervised child process, its readiness probe, and the port check.

Every child runs in its own process group (its own session), so a terminal's Ctrl-C reaches
only the supervisor, which then stops the children in order, and a stop reaches whatever a
child started itself. Stopping is SIGTERM to the group, a bounded wait, then SIGKILL; the exit
is always awaited, so no child is left a zombie.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import grpc

from gateway_core.utils.tasks import spawn
from gateway_lab.grpc_client import ChannelSpec, check_health, rpc_error
from gateway_lab.topology import SocketNeed

Probe = Callable[[aiohttp.ClientSession], Awaitable[str | None]]
"""Returns None when the child is ready, else why not (shown when start-up times out)."""
STOP_TIMEOUT = 10.0
PROBE_INTERVAL = 0.1


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str
    kind: str
    argv: tuple[str, ...]
    log: Path
    probe: Probe
    summary: str
    env: dict[str, str] = field(default_factory=dict)


class StartupError(RuntimeError):
    """A child died or did not become ready in time; the message names it and shows its log."""


class Child:
    """A supervised child: start, probe readiness, signal, stop, and notice unexpected exits."""

    def __init__(self, spec: ProcessSpec, on_exit: Callable[[Child, int], None]) -> None:
        self.spec = spec
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self.expected_exit = False
        self.starts = 0
        self.exit_code: int | None = None
        self._on_exit = on_exit
        self._waiter: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        if self.alive:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.spec.env}
        with self.spec.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env=env,
            )
        self.ready = False
        self.expected_exit = False
        self.exit_code = None
        self.starts += 1
        self._waiter = spawn(self._wait_exit(self.proc), name=f"wait {self.name}")

    async def _wait_exit(self, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if proc is not self.proc:
            return
        self.exit_code = code
        self.ready = False
        if not self.expected_exit:
            self._on_exit(self, code)

    async def wait_ready(self, session: aiohttp.ClientSession, deadline: float) -> None:
        """Probe until ready; raises ``StartupError`` on exit or at ``deadline`` (monotonic)."""
        reason = "not probed yet"
        while True:
            proc = self.proc
            if proc is None or proc.returncode is not None:
                code = proc.returncode if proc is not None else None
                raise StartupError(
                    f"{self.name} exited with code {code} while starting\n{self.log_tail()}"
                )
            probed = await self.spec.probe(session)
            if probed is None:
                self.ready = True
                return
            reason = probed
            if time.monotonic() >= deadline:
                raise StartupError(
                    f"{self.name} (pid {proc.pid}) did not become ready in time: {reason}\n"
                    f"{self.log_tail()}"
                )
            await asyncio.sleep(PROBE_INTERVAL)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, grace: float = STOP_TIMEOUT) -> None:
        """Signal the whole process group, wait, SIGKILL after ``grace`` seconds; idempotent."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            self.expected_exit = True
            self.ready = False
            _signal_group(proc.pid, sig)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        # Anything the child left in its group (it should leave nothing) goes too.
        _signal_group(proc.pid, signal.SIGKILL)
        if self._waiter is not None:
            await self._waiter

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.spec.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return f"(no log at {self.spec.log})"
        tail = text.splitlines()[-lines:]
        if not tail:
            return f"(its log {self.spec.log} is empty)"
        body = "\n".join(f"    {line}" for line in tail)
        return f"  last lines of {self.spec.log}:\n{body}"

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.spec.kind,
            "pid": self.pid,
            "alive": self.alive,
            "ready": self.ready and self.alive,
            "exit_code": self.exit_code,
            "starts": self.starts,
            "summary": self.spec.summary,
            "log": str(self.spec.log),
        }


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---- probes ---------------------------------------------------------------------------------


def http_probe(*urls: str) -> Probe:
    """Ready when every URL answers 200."""

    async def probe(session: aiohttp.ClientSession) -> str | None:
        for url in urls:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                    if resp.status != 200:
                        return f"{url} answered {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                return f"{url}: {type(exc).__name__} {exc}".rstrip()
        return None

    return probe


def grpc_health_probe(*targets: str) -> Probe:
    """Ready when every ``host:port`` answers the grpc.health.v1 check with ``SERVING``."""

    async def probe(session: aiohttp.ClientSession) -> str | None:
        for target in targets:
            try:
                status = await check_health(ChannelSpec(target), call_timeout=1.0)
            except grpc.aio.AioRpcError as exc:
                return f"grpc health of {target}: {rpc_error(exc)}"
            if status != "SERVING":
                return f"grpc health of {target}: {status}"
        return None

    return probe


def all_probes(*probes: Probe) -> Probe:
    """Ready when every probe is; the first reason otherwise."""

    async def probe(session: aiohttp.ClientSession) -> str | None:
        for one in probes:
            reason = await one(session)
            if reason is not None:
                return reason
        return None

    return probe


def dns_probe(server: tuple[str, int], name: str) -> Probe:
    """Ready when the DNS server answers an A query for ``name`` with NOERROR."""

    async def probe(session: aiohttp.ClientSession) -> str | None:
        query = dns.message.make_query(name, "A")
        try:
            reply = await dns.asyncquery.udp(query, server[0], port=server[1], timeout=0.5)
        except (dns.exception.DNSException, OSError) as exc:
            return f"DNS query for {name} at {server[0]}:{server[1]} failed: {exc}"
        if reply.rcode() != dns.rcode.NOERROR:
            return f"DNS answered {dns.rcode.to_text(reply.rcode())} for {name}"
        return None

    return probe


# ---- port check -----------------------------------------------------------------------------


def check_sockets(needs: Sequence[SocketNeed]) -> list[str]:
    """One message per socket some lab process could not bind right now."""
    problems: list[str] = []
    for need in needs:
        message = _try_bind(need)
        if message is not None:
            problems.append(message)
    return problems


def _try_bind(need: SocketNeed) -> str | None:
    family = socket.AF_INET6 if ipaddress.ip_address(need.host).version == 6 else socket.AF_INET
    kind = socket.SOCK_DGRAM if need.proto == "udp" else socket.SOCK_STREAM
    where = f"port {need.port}{'/udp' if need.proto == 'udp' else ''} on {need.host}"
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            # As the real servers do, so a recent lab's TIME_WAIT sockets do not count as busy.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((need.host, need.port))
            if kind == socket.SOCK_STREAM:
                sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"{where} is already in use ({need.owner})"
            if exc.errno == errno.EADDRNOTAVAIL:
                return (
                    f"address {need.host} is not available on this machine ({need.owner}); "
                    f"loopback addresses other than 127.0.0.1 need an alias on macOS: "
                    f"sudo ifconfig lo0 alias {need.host}"
                )
            if exc.errno == errno.EACCES:
                return f"{where} needs privileges to bind ({need.owner})"
            return f"cannot bind {where} ({need.owner}): {exc.strerror}"
    return None
