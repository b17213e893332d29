"""Data path (benchmark): one wrk measurement of one path, with the proxy's CPU time around it.

``parse_wrk`` reads wrk's ``--latency`` report; ``measure`` runs wrk pinned to the load core and
samples the proxies' CPU time and both cores' busy fraction before and after, so a run whose
load generator saturated its core can be told apart from one limited by the proxy.
"""

from __future__ import annotations

import re
import resource
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from bench.procs import busy_fraction, cpu_busy_ticks, cpu_seconds, cpu_split, process_tree

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*([\d.]+)(us|ms|s|m|h)\s*$")


class WrkError(RuntimeError):
    """wrk failed or printed something this parser does not understand."""


@dataclass(frozen=True, slots=True)
class WrkReport:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    non_2xx_3xx: int


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run of one path: wrk's report plus the CPU cost measured around it.

    ``other_cores`` is what the whole machine was busy with beyond the proxies, wrk and the
    backend (other users' processes, plus a little kernel work for our own traffic): a run
    where it is high was disturbed and its numbers are not comparable."""

    report: WrkReport
    proxy_cpu_s: float
    wall_s: float
    load_core_busy: float
    proxy_core_busy: float
    proxy_system_s: float = 0.0
    """The kernel part of ``proxy_cpu_s`` (mostly socket syscalls and loopback TCP)."""
    wrk_cpu_s: float = 0.0
    backend_cpu_s: float = 0.0
    machine_busy_cores: float = 0.0

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


def duration_ms(text: str) -> float:
    """wrk's latency notation ("446.00us", "2.47ms", "1.02s") in milliseconds."""
    match = _DURATION.match(text)
    if match is None:
        raise WrkError(f"unrecognised duration {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkReport:
    requests = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", output, re.M)
    rps = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.M)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.M)
    if not (requests and rps and p50 and p99):
        raise WrkError(f"cannot parse wrk output:\n{output}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    seconds = duration_ms(requests.group(2) + requests.group(3)) / 1000.0
    return WrkReport(
        requests=int(requests.group(1)),
        seconds=seconds,
        rps=float(rps.group(1)),
        p50_ms=duration_ms(p50.group(1)),
        p99_ms=duration_ms(p99.group(1)),
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_argv(url: str, *, duration: float, connections: int, cpu: int | None) -> list[str]:
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    return [
        *pin,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        url,
    ]


def measure(
    url: str,
    proxy_roots: Sequence[int],
    backend_roots: Sequence[int],
    *,
    duration: float,
    connections: int,
    load_cpu: int | None,
    proxy_cpu: int | None,
) -> RunResult:
    proxies = [pid for root in proxy_roots for pid in process_tree(root)]
    backends = [pid for root in backend_roots for pid in process_tree(root)]
    argv = wrk_argv(url, duration=duration, connections=connections, cpu=load_cpu)
    ticks0, proxy0, backend0 = cpu_busy_ticks(), cpu_split(proxies), cpu_seconds(backends)
    children0, start = _children_cpu(), time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    wall = time.monotonic() - start
    proxy1, backend1, ticks1 = cpu_split(proxies), cpu_seconds(backends), cpu_busy_ticks()
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return RunResult(
        report=parse_wrk(done.stdout),
        proxy_cpu_s=sum(proxy1) - sum(proxy0),
        proxy_system_s=proxy1[1] - proxy0[1],
        wall_s=wall,
        load_core_busy=busy_fraction(ticks0, ticks1, 0 if load_cpu is None else load_cpu),
        proxy_core_busy=busy_fraction(ticks0, ticks1, 1 if proxy_cpu is None else proxy_cpu),
        wrk_cpu_s=_children_cpu() - children0,
        backend_cpu_s=backend1 - backend0,
        machine_busy_cores=sum(busy_fraction(ticks0, ticks1, cpu) for cpu in ticks1),
    )


def _children_cpu() -> float:
    # wrk is the only child reaped while a run is in progress, so the delta is wrk's CPU time.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
