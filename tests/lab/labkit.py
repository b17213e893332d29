"""Lab test kit: ``gateway-lab up`` as a real subprocess, its output, status and children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway_lab.topology import Topology

START_TIMEOUT = 120.0
STOP_TIMEOUT = 40.0


class RunningLab:
    """A ``gateway-lab up`` process, its output file and the pids of its children."""

    def __init__(self, workdir: Path, topology: Topology) -> None:
        self.workdir = workdir
        self.topology = topology
        self.output = workdir.parent / "lab-output.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        self.child_pids: list[int] = []

    def start(self) -> None:
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway_lab.cli", "up", "--workdir", str(self.workdir)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while "lab ready in" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the lab did not start:\n{self.text()}")
            time.sleep(0.2)
        self.child_pids = [p["pid"] for p in self.status()["processes"]]

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def curl_commands(self) -> list[str]:
        """The curl lines the lab printed, in order."""
        return [ln.strip() for ln in self.text().splitlines() if ln.strip().startswith("curl ")]

    def status(self) -> dict[str, Any]:
        host, port = self.topology.control
        with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=10) as resp:
            body: dict[str, Any] = json.load(resp)
            return body

    def admin(self, path: str) -> Any:
        host, port = self.topology.tier1.admin
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=10) as resp:
            return json.load(resp)

    def wait_healthy(self, limit: float = 30.0) -> None:
        """Until Tier-1 sees every Tier-2 healthy: on a loaded machine a 500 ms health-check
        timeout can flap, and these tests are about routing, not about that."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            clusters = self.admin("/clusters")
            if all(h["healthy"] for c in clusters.values() for h in c["hosts"]):
                return
            time.sleep(0.2)

    def diagnostics(self) -> str:
        """Tier-1's view of the Tier-2 hosts and its last access-log lines, for failures."""
        hosts = {
            key: [(h["address"], h["healthy"]) for h in state["hosts"]]
            for key, state in self.admin("/clusters").items()
        }
        log = self.workdir / "logs" / "tier1-gateway.access.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        return f"tier1 hosts: {hosts}\ntier1 access log tail:\n" + "\n".join(tail)

    def cli(self, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway_lab.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def wait_stopped(self) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the lab did not stop within {STOP_TIMEOUT}s:\n{self.text()}")

    def stop(self) -> None:
        """SIGINT like Ctrl-C; anything left behind is killed so later tests get the ports."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.alive_children():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def alive_children(self) -> list[int]:
        alive = []
        for pid in self.child_pids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            alive.append(pid)
        return alive
