"""Data path (benchmark): wrk's ``--latency`` report and one wrk run of one path.

``parse_wrk`` reads the report; ``measure`` runs wrk pinned to the load core through
``bench.load.measure_command``, which samples the proxies' CPU time, RSS and both cores' busy
fraction around it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench.load import LoadError, LoadReport, RunResult, measure_command, pinned

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*([\d.]+)(us|ms|s|m|h)\s*$")

WrkReport = LoadReport
"""wrk's report is the common one (kept under its old name for the HTTP/1.1 paths)."""

__all__ = ["RunResult", "WrkError", "WrkReport", "duration_ms", "measure", "parse_wrk", "wrk_argv"]


class WrkError(LoadError):
    """wrk failed or printed something this parser does not understand."""


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


def wrk_argv(
    url: str, *, duration: float, connections: int, cpu: int | None, headers: Sequence[str] = ()
) -> list[str]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    return pinned([*argv, url], cpu)


def measure(
    url: str,
    proxy_roots: Sequence[int],
    backend_roots: Sequence[int],
    *,
    duration: float,
    connections: int,
    load_cpu: int | None,
    proxy_cpu: int | None,
    headers: Sequence[str] = (),
) -> RunResult:
    argv = wrk_argv(url, duration=duration, connections=connections, cpu=load_cpu, headers=headers)
    return measure_command(
        argv,
        parse_wrk,
        proxy_roots,
        backend_roots,
        duration=duration,
        load_cpu=load_cpu,
        proxy_cpu=proxy_cpu,
    )
