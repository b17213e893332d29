"""Data path (benchmark): optional looks inside a proxy under load (py-spy, strace).

Both run outside the measured rounds, because a profiler attached to a process slows it down.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.procs import process_tree
from bench.pyspy import Profile, find_py_spy, finish_record, start_record
from bench.syscalls import SyscallCount, find_strace, parse_summary, start_strace, stop_strace
from bench.topology import BenchPath
from bench.wrk import RunResult

Runner = Callable[[BenchPath, float], RunResult]
SYSCALL_KEYS = ("b-ours", "b-ours-log", "b-nginx", "c-ours-plain", "c-nginx-plain")
STRACE_SECONDS = 3.0
ATTACH_PAUSE = 0.5


def profile_gateway(
    paths: Sequence[BenchPath], key: str, run: Runner, duration: float, *, native: bool
) -> Profile | None:
    """py-spy the first of our gateways on path ``key`` (Tier-1 for (c)) while wrk loads it."""
    py_spy = find_py_spy()
    target = next((p for p in paths if p.key == key and p.impl == "ours"), None)
    if py_spy is None or target is None:
        print(f"profile skipped: needs py-spy (pip install py-spy) and our path {key}", flush=True)
        return None
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-prof-"))
    out = workdir / "profile.txt"
    print(f"profiling {target.key} with py-spy for {duration:.0f}s ...", flush=True)
    popen = start_record(py_spy, target.proxies[0].pid, duration, out, native=native)
    try:
        time.sleep(ATTACH_PAUSE)
        run(target, duration + 1)
        return finish_record(popen, out, timeout=duration + 30)
    except RuntimeError as exc:
        print(f"profile failed: {exc}", flush=True)
        return None
    finally:
        _reap(popen)
        shutil.rmtree(workdir, ignore_errors=True)


def count_syscalls(
    paths: Sequence[BenchPath], run: Runner
) -> dict[str, tuple[int, list[SyscallCount]]]:
    """System calls per request of the paths in ``SYSCALL_KEYS``, summed over all their
    processes (both tiers for the (c) paths)."""
    strace = find_strace()
    if strace is None:
        print("syscall count skipped: needs strace (apt-get install -y strace)", flush=True)
        return {}
    results: dict[str, tuple[int, list[SyscallCount]]] = {}
    for path in (p for p in paths if p.key in SYSCALL_KEYS):
        workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-strace-"))
        out = workdir / "strace.txt"
        pids = [pid for proc in path.proxies for pid in process_tree(proc.pid)]
        print(f"counting system calls of {path.key} with strace ...", flush=True)
        popen = start_strace(strace, pids, out)
        try:
            time.sleep(ATTACH_PAUSE)
            requests = run(path, STRACE_SECONDS).report.requests
            summary = stop_strace(popen, out)
            results[path.key] = (requests, parse_summary(summary, requests))
        except RuntimeError as exc:
            print(f"syscall count of {path.key} failed: {exc}", flush=True)
        finally:
            _reap(popen)
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def _reap(popen: subprocess.Popen[bytes]) -> None:
    # Interrupted mid-run: the tracer must not outlive the benchmark.
    if popen.poll() is None:
        popen.kill()
        popen.communicate()
    elif popen.stderr is not None and not popen.stderr.closed:
        popen.stderr.close()
