"""Data path (benchmark): one run of a load generator against one path, with the proxy's cost.

The load generators (wrk, h2load, bench/grpc_load.py) differ only in their command line and
their report; ``measure_command`` runs any of them pinned to the load core and samples, around
it, the proxies' CPU time, both cores' busy fraction and the proxies' peak RSS, so a run whose
load generator saturated its core can be told apart from one limited by the proxy.
"""

from __future__ import annotations

import resource
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.procs import (
    busy_fraction,
    cpu_busy_ticks,
    cpu_seconds,
    cpu_split,
    process_tree,
    rss_bytes,
)

RSS_INTERVAL = 0.1
"""Seconds between two RSS samples of the proxies during a run."""


class LoadError(RuntimeError):
    """The load generator failed or printed something its parser does not understand."""


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load generator reports about one run, whatever the protocol.

    ``non_2xx_3xx`` counts completed responses that failed: HTTP 4xx/5xx, or gRPC calls that
    did not end with status OK. ``socket_errors`` counts connection-level failures."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx_3xx: int


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of one path: the load generator's report plus the cost measured around it.

    ``other_cores`` is what the whole machine was busy with beyond the proxies, the load
    generator and the backend (other users' processes, plus a little kernel work for our own
    traffic): a run where it is high was disturbed and its numbers are not comparable."""

    report: LoadReport
    proxy_cpu_s: float
    wall_s: float
    load_core_busy: float
    proxy_core_busy: float
    proxy_system_s: float = 0.0
    """The kernel part of ``proxy_cpu_s`` (mostly socket syscalls and loopback TCP)."""
    wrk_cpu_s: float = 0.0
    """CPU time of the load generator (wrk, h2load or the gRPC load client)."""
    backend_cpu_s: float = 0.0
    machine_busy_cores: float = 0.0
    proxy_rss_peak: int = 0
    """Highest sum of the proxies' RSS in bytes, sampled every ``RSS_INTERVAL`` seconds."""

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.proxy_cpu_s / self.report.requests if self.report.requests else 0.0

    @property
    def system_us_per_request(self) -> float:
        return 1e6 * self.proxy_system_s / self.report.requests if self.report.requests else 0.0

    @property
    def proxy_cores(self) -> float:
        return self.proxy_cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def other_cores(self) -> float:
        if self.wall_s <= 0:
            return 0.0
        ours = (self.proxy_cpu_s + self.wrk_cpu_s + self.backend_cpu_s) / self.wall_s
        return max(0.0, self.machine_busy_cores - ours)


def nearest_rank(ordered: Sequence[int], pct: float) -> int:
    """The nearest-rank percentile of an ascending sequence (0 when it is empty)."""
    if not ordered:
        return 0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[min(len(ordered), int(rank)) - 1]


def pinned(argv: Sequence[str], cpu: int | None) -> list[str]:
    """``argv`` under ``taskset -c cpu`` when a CPU is given."""
    return [*(["taskset", "-c", str(cpu)] if cpu is not None else []), *argv]


class _RssPeak:
    """Samples the summed RSS of ``pids`` on a thread until ``stop``; keeps the highest."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        total = 0
        for pid in self.pids:
            try:
                total += rss_bytes(pid)
            except (OSError, ValueError, IndexError):
                continue
        self.peak = max(self.peak, total)

    def _loop(self) -> None:
        while not self._stop.wait(RSS_INTERVAL):
            self._sample()

    def __enter__(self) -> _RssPeak:
        if self.pids:
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self._sample()


def measure_command(
    argv: Sequence[str],
    parse: Callable[[str], LoadReport],
    proxy_roots: Sequence[int],
    backend_roots: Sequence[int],
    *,
    duration: float,
    load_cpu: int | None,
    proxy_cpu: int | None,
) -> RunResult:
    """Run the (already pinned) load generator ``argv`` once and measure around it. A non-zero
    exit is a ``LoadError`` carrying the tool's own message (its last stderr lines)."""
    proxies = [pid for root in proxy_roots for pid in process_tree(root)]
    backends = [pid for root in backend_roots for pid in process_tree(root)]
    ticks0, proxy0, backend0 = cpu_busy_ticks(), cpu_split(proxies), cpu_seconds(backends)
    children0, start = _children_cpu(), time.monotonic()
    with _RssPeak(proxies) as rss:
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=duration + 60, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError(f"{_tool(argv)} did not finish within {duration + 60:.0f}s") from exc
    wall = time.monotonic() - start
    proxy1, backend1, ticks1 = cpu_split(proxies), cpu_seconds(backends), cpu_busy_ticks()
    if done.returncode != 0:
        detail = "\n".join((done.stderr.strip() or done.stdout.strip()).splitlines()[-8:])
        raise LoadError(f"{_tool(argv)} exited {done.returncode}: {detail}")
    return RunResult(
        report=parse(done.stdout),
        proxy_cpu_s=sum(proxy1) - sum(proxy0),
        proxy_system_s=proxy1[1] - proxy0[1],
        wall_s=wall,
        load_core_busy=busy_fraction(ticks0, ticks1, 0 if load_cpu is None else load_cpu),
        proxy_core_busy=busy_fraction(ticks0, ticks1, 1 if proxy_cpu is None else proxy_cpu),
        wrk_cpu_s=_children_cpu() - children0,
        backend_cpu_s=backend1 - backend0,
        machine_busy_cores=sum(busy_fraction(ticks0, ticks1, cpu) for cpu in ticks1),
        proxy_rss_peak=rss.peak,
    )


def _tool(argv: Sequence[str]) -> str:
    """The load generator's name in ``argv`` (after ``taskset -c N`` and an interpreter)."""
    words = list(argv)
    if words[:1] == ["taskset"]:
        words = words[3:]
    if len(words) > 1 and "python" in words[0].rsplit("/", 1)[-1]:
        return words[1].rsplit("/", 1)[-1]
    return words[0].rsplit("/", 1)[-1] if words else "load generator"


def _children_cpu() -> float:
    # The load generator is the only child reaped while a run is in progress, so the delta is
    # its CPU time.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
