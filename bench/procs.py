"""Data path (benchmark): starts, watches and always stops the processes of a benchmark run.

Every process gets its own session, so stopping one also stops what it forked (nginx workers)
without touching anything the benchmark did not start. CPU time and RSS come straight from
``/proc`` (Linux), summed over the whole process tree, because "proxy CPU" must include
nginx's worker as well as its master.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class StartError(RuntimeError):
    """A process exited or never became ready; the message carries its log tail."""


@dataclass(slots=True)
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass(slots=True)
class ProcessSet:
    """The processes of one benchmark; ``stop_all`` is safe to call at any time, twice."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], *, cpu: int | str | None = None) -> Proc:
        cmd = [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *argv]
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self, grace: float = 5.0) -> None:
        for proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs):
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.popen.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=2.0)
        self.procs.clear()


def _signal_group(proc: Proc, sig: signal.Signals) -> None:
    # The session id equals the pid we started, so this reaches its forks and nothing else.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def wait_until(
    check: Callable[[], bool], proc: Proc, *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll ``check`` until it holds; fail early with the log tail if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise StartError(
                f"{proc.name} exited with {proc.popen.returncode} before {what}:\n{proc.log_tail()}"
            )
        if check():
            return
        time.sleep(interval)
    raise StartError(f"{proc.name}: no {what} after {timeout:.0f}s:\n{proc.log_tail()}")


def http_get(url: str, timeout: float = 2.0, headers: Sequence[str] = ()) -> tuple[int, bytes]:
    """Status and body of a GET (``headers``: ``Name: value`` lines); (0, b"") when nothing
    answers."""
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()
    except (OSError, ValueError):
        return 0, b""


def answers_ok(url: str) -> Callable[[], bool]:
    return lambda: http_get(url)[0] == 200


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses: split after the last ")".
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants that exist right now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_split(pids: Sequence[int]) -> tuple[float, float]:
    """User and system CPU time of ``pids`` (all threads), in seconds; vanished pids count 0."""
    user = system = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    return user / CLK_TCK, system / CLK_TCK


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of ``pids`` (all threads), in seconds."""
    return sum(cpu_split(pids))


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, from ``/proc/<pid>/statm``."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * PAGE_KIB * 1024


def cpu_busy_ticks() -> dict[int, tuple[int, int]]:
    """Per-CPU (busy, total) jiffies from ``/proc/stat``."""
    result: dict[int, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        nums = [int(v) for v in values]
        idle = nums[3] + (nums[4] if len(nums) > 4 else 0)
        result[int(name[3:])] = (sum(nums[:8]) - idle, sum(nums[:8]))
    return result


def machine_busy(interval: float) -> float:
    """Cores the whole machine kept busy during the next ``interval`` seconds."""
    before = cpu_busy_ticks()
    time.sleep(interval)
    after = cpu_busy_ticks()
    return sum(busy_fraction(before, after, cpu) for cpu in after)


def busy_fraction(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpu: int
) -> float:
    """How busy ``cpu`` was between two ``cpu_busy_ticks`` readings (0..1)."""
    if cpu not in before or cpu not in after:
        return 0.0
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total > 0 else 0.0
