"""Data path (benchmark): ``python bench/run.py [--runs 3] [--quick] [--h2] [--grpc]``.

Brings up the backends, our gateways and nginx (bench/topology.py, bench/paths.py), measures
every path with its load generator (wrk for HTTP/1.1, h2load for HTTP/2, bench/grpc_load.py for
gRPC) in interleaved rounds (round 1 of every path, then round 2, ...) so drift hits all paths
alike, then measures RSS growth for 100 MB streamed bodies through an HTTP/1.1 Tier-2, and
optionally profiles a gateway with py-spy (``--profile``) and counts system calls per request
with strace (``--syscalls``). Prints markdown tables and writes bench/results/bench-<time>.json.
``--workers N`` runs every proxy with N worker processes (ours ``--workers N``, nginx
``worker_processes N`` with ``reuseport``). The exit code only says whether the benchmark ran
(0), lacked tools (2), failed (1) or was interrupted (130): goals are reported, never
enforced, and one of our HTTP/2 or gRPC paths that cannot be measured (our gateway does not
speak the protocol) is reported, not fatal.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TypeVar

from bench import diagnose, drivers, environment, report, stats
from bench.load import LoadError, RunResult
from bench.paths import build_paths, select
from bench.procs import ProcessSet, StartError, machine_busy
from bench.pyspy import Profile
from bench.stream import Transfer, run_transfers
from bench.syscalls import SyscallCount, format_counts
from bench.topology import PATH_KEYS, BenchPath, Pinning, Topology, free_port
from certs.generate import generate_lab_certs

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUIET_SAMPLE = 1.0
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    runs: int
    warmup: float
    connections: int
    transfer_mb: int
    stall: float
    max_other: float
    retries: int
    quiet_timeout: float
    pin: bool
    rss: bool
    profile: str
    """Path whose first gateway is profiled with py-spy ('' for none)."""
    native: bool
    syscalls: bool
    only: tuple[str, ...]
    groups: tuple[str, ...]
    """Path groups asked for with --h1, --h2, --grpc (the paths of ``only`` come on top)."""
    keep_workdir: bool
    results_dir: Path
    workers: int = 1
    """Worker processes of every proxy: ours ``--workers N``, nginx ``worker_processes N``."""


@dataclass(frozen=True, slots=True)
class Results:
    summaries: list[stats.Summary]
    runs: dict[str, list[RunResult]]
    discarded: int
    transfers: list[Transfer]
    profile: Profile | None
    syscalls: dict[str, tuple[int, list[SyscallCount]]]
    unavailable: dict[str, str]
    """Optional paths that could not be brought up or measured, and why."""


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--runs", type=int, default=3, help="runs per path (medians are reported)")
    p.add_argument("--quick", action="store_true", help="3 s runs, 1 run each: a smoke test")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured wrk seconds per path")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--transfer-mb", type=int, default=100, help="body size of the RSS test")
    p.add_argument("--stall", type=float, default=2.0, help="receiver stall in the RSS test")
    p.add_argument(
        "--max-other",
        type=float,
        default=0.15,
        metavar="CORES",
        help="discard a run when other processes used more CPU than this (default 0.15)",
    )
    p.add_argument("--retries", type=int, default=2, help="re-runs of a disturbed run")
    p.add_argument(
        "--quiet-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for an idle machine before each run (default 30)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    p.add_argument("--no-rss", action="store_true", help="skip the streaming RSS test")
    p.add_argument(
        "--profile",
        nargs="?",
        const="b-ours",
        default="",
        metavar="PATH",
        help="py-spy our first gateway of PATH (default b-ours) under load",
    )
    p.add_argument("--native", action="store_true", help="with --profile: include C frames")
    p.add_argument(
        "--syscalls", action="store_true", help="strace -c: system calls per request of (b), (c)"
    )
    p.add_argument("--only", nargs="+", default=[], metavar="KEY", help="measure these paths")
    for group, what in (
        ("h1", "the HTTP/1.1 paths (a, b, c; the default when no path is named)"),
        ("h2", "the HTTP/2 paths (h2load over TLS, ALPN h2)"),
        ("grpc", "the gRPC paths (bench/grpc_load.py, h2c)"),
        ("floor", "the floor: a minimal forwarder (bench/floor.py) on the b and h2 paths"),
    ):
        p.add_argument(f"--{group}", action="append_const", const=group, dest="groups", help=what)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="N worker processes in every proxy: our --workers N against nginx "
        "worker_processes N (proxies get CPUs 1..N where the machine has them)",
    )
    p.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    a = p.parse_args(argv)
    return Options(
        duration=3.0 if a.quick else a.duration,
        runs=1 if a.quick else max(1, a.runs),
        warmup=1.0 if a.quick else a.warmup,
        connections=a.connections,
        transfer_mb=a.transfer_mb,
        stall=a.stall,
        max_other=a.max_other,
        retries=0 if a.quick else max(0, a.retries),
        quiet_timeout=0.0 if a.quick else a.quiet_timeout,
        pin=not a.no_pin,
        rss=not a.no_rss,
        profile=a.profile,
        native=a.native,
        syscalls=a.syscalls,
        only=tuple(a.only),
        groups=tuple(a.groups or ()),
        keep_workdir=a.keep_workdir,
        results_dir=a.results_dir,
        workers=max(1, a.workers),
    )


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    h2 = bool({"h2", "floor"} & set(opts.groups)) or any(key.startswith("h2-") for key in opts.only)
    grpc = "grpc" in opts.groups or any(key.startswith("grpc-") for key in opts.only)
    tools, missing = environment.find_tools(need_taskset=opts.pin, need_h2load=h2, need_grpc=grpc)
    if tools is None:
        print("cannot run the benchmark, missing:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 2
    pin = environment.pinning(opts.pin, opts.workers)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    procs = ProcessSet(workdir)
    handlers = signal.getsignal(signal.SIGINT), signal.signal(signal.SIGTERM, _terminate)
    try:
        generate_lab_certs(workdir / "certs")
        tools = environment.with_cert_dir(tools, workdir / "certs")
        return _benchmark(Topology(procs, tools, pin, opts.workers), opts)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process", file=sys.stderr)
        return 130
    except (StartError, LoadError, RuntimeError, OSError, ValueError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        procs.stop_all()
        if opts.keep_workdir:
            print(f"configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])


def _benchmark(topo: Topology, opts: Options) -> int:
    print(environment.describe(topo.pin), flush=True)
    print("starting backend, gateways and nginx ...", flush=True)
    keys = select(opts.groups, opts.only)
    built = build_paths(topo, keys)
    unavailable = {p.key: p.failure for p in built if p.failure}
    for key, reason in unavailable.items():
        print(f"{key}: cannot be measured: {reason}", flush=True)
    run = partial(_run_one, pin=topo.pin, opts=opts, scratch=topo.workdir)
    runs, discarded = _measure_all([p for p in built if not p.failure], run, opts, unavailable)
    paths = [p for p in built if p.key in runs]
    if not paths:
        raise RuntimeError("no path could be measured")
    http1 = any(key in PATH_KEYS for key in keys)
    # The RSS test follows one process's memory: it runs without workers only.
    transfers = _rss_test(topo, opts) if opts.rss and http1 and opts.workers == 1 else []
    profile = None
    if opts.profile:
        profile = diagnose.profile_gateway(
            paths, opts.profile, run, opts.duration, native=opts.native
        )
    syscalls = diagnose.count_syscalls(paths, run) if opts.syscalls else {}
    summaries = [stats.summarize(p.key, runs[p.key]) for p in paths]
    results = Results(summaries, runs, discarded, transfers, profile, syscalls, unavailable)
    _print_report(results, {p.key: p.label for p in built}, opts)
    _write_json(results, topo.pin, opts)
    return 0


def _measure_all(
    paths: Sequence[BenchPath], run: diagnose.Runner, opts: Options, unavailable: dict[str, str]
) -> tuple[dict[str, list[RunResult]], int]:
    """Interleaved rounds over all paths; returns the runs kept and how many were discarded.
    An optional path whose run fails is dropped with its reason in ``unavailable``."""
    live = list(paths)
    for path in paths:
        print(f"warm-up {path.key} ({opts.warmup:.0f}s)", flush=True)
        _tolerant(path, partial(run, path, opts.warmup), live, unavailable)
    runs: dict[str, list[RunResult]] = {p.key: [] for p in live}
    discarded = 0
    for index in range(opts.runs):
        for path in list(live):
            got = _tolerant(path, partial(_quiet_run, path, run, opts), live, unavailable)
            if got is None:
                del runs[path.key]
                continue
            result, retries = got
            discarded += retries
            runs[path.key].append(result)
            print(
                f"run {index + 1}/{opts.runs} {path.key:14} {result.report.rps:9,.0f} rps  "
                f"p50 {result.report.p50_ms:6.2f} ms  p99 {result.report.p99_ms:6.2f} ms  "
                f"{result.cpu_us_per_request:6.1f} µs/req  other {result.other_cores:.2f} cores",
                flush=True,
            )
    return runs, discarded


def _tolerant(
    path: BenchPath, attempt: Callable[[], _T], live: list[BenchPath], unavailable: dict[str, str]
) -> _T | None:
    """``attempt()``; for an optional path a failure is recorded and the path dropped."""
    if path not in live:
        return None
    try:
        return attempt()
    except (LoadError, StartError) as exc:
        if not path.optional:
            raise
        reason = str(exc).strip().splitlines()[0]
        print(f"{path.key}: cannot be measured: {reason}", flush=True)
        unavailable[path.key] = reason
        live.remove(path)
        return None


def _quiet_run(path: BenchPath, run: diagnose.Runner, opts: Options) -> tuple[RunResult, int]:
    """A run that other processes on the machine did not disturb, if one can be had within
    ``opts.retries`` repetitions; otherwise the last run (its "other cores" shows it)."""
    for attempt in range(opts.retries + 1):
        _wait_for_quiet(opts)
        result = run(path, opts.duration)
        if result.other_cores <= opts.max_other or attempt == opts.retries:
            return result, attempt
        print(
            f"  {path.key}: discarded, other processes used {result.other_cores:.2f} cores; "
            "retrying",
            flush=True,
        )
    raise AssertionError("unreachable: the last attempt always returns")


def _wait_for_quiet(opts: Options) -> None:
    """Start a run only once the machine is idle apart from this benchmark's idle processes,
    so a run is not wasted on a disturbance that is already visible (bounded wait)."""
    deadline = time.monotonic() + opts.quiet_timeout
    busy = machine_busy(QUIET_SAMPLE)
    told = False
    while busy > opts.max_other and time.monotonic() < deadline:
        if not told:
            print(f"  waiting for a quiet machine ({busy:.2f} cores busy elsewhere)", flush=True)
            told = True
        busy = machine_busy(QUIET_SAMPLE)


def _run_one(
    path: BenchPath, duration: float, *, pin: Pinning, opts: Options, scratch: Path
) -> RunResult:
    for proc in path.proxies:
        if not proc.alive():
            raise StartError(f"{proc.name} died (exit {proc.popen.returncode}):\n{proc.log_tail()}")
    return drivers.run(path, duration, pin=pin, connections=opts.connections, scratch=scratch)


def _rss_test(topo: Topology, opts: Options) -> list[Transfer]:
    print(f"RSS test: {opts.transfer_mb} MB up and down through a Tier-2 ...", flush=True)
    backend_port = free_port()
    port, gateway = topo.ours_single(backend_port, access_log="off", name="rss-tier2")
    size = opts.transfer_mb * 1000 * 1000
    return asyncio.run(run_transfers(gateway.pid, port, backend_port, size, opts.stall))


def _print_report(results: Results, labels: dict[str, str], opts: Options) -> None:
    ratios = stats.ratios({s.key: s for s in results.summaries})
    print()
    print(report.path_table(results.summaries, labels))
    if ratios:
        print()
        print(report.ratio_table(ratios))
        print()
        print("\n".join(report.goal_lines(ratios)))
    for s in results.summaries:
        if s.errors:
            print(f"WARNING: {s.key} had {s.errors} socket errors or non-2xx/3xx responses")
    if results.unavailable:
        print()
        print("\n".join(report.unavailable_lines(results.unavailable, labels)))
    if results.discarded:
        print(f"{results.discarded} runs were discarded: other processes were using the machine")
    if results.transfers:
        print()
        print(report.rss_table(results.transfers))
    if results.profile is not None:
        print()
        print(report.profile_text(results.profile, opts.profile))
    for key, (requests, counts) in results.syscalls.items():
        print(format_counts(key, requests, counts))


def _write_json(results: Results, pin: Pinning, opts: Options) -> None:
    raw = {
        key: [{**asdict(r), "report": asdict(r.report), "other_cores": r.other_cores} for r in rs]
        for key, rs in results.runs.items()
    }
    options = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    meta = environment.metadata(pin) | {"options": options, "discarded_runs": results.discarded}
    ratios = stats.ratios({s.key: s for s in results.summaries})
    doc = report.document(
        meta,
        results.summaries,
        raw,
        ratios,
        results.transfers,
        results.profile,
        results.unavailable,
    )
    doc["syscalls_per_request"] = {
        key: {"requests": requests, "calls": {c.name: c.per_request for c in counts}}
        for key, (requests, counts) in results.syscalls.items()
    }
    opts.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = opts.results_dir / f"bench-{stamp}.json"
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"\nresults written to {os.path.relpath(out)}")
