"""Data path (benchmark): finds the tools a run needs and describes the machine it ran on."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bench.topology import Pinning, Tools

REPO = Path(__file__).resolve().parent.parent
_APT = {"nginx": "nginx-light", "wrk": "wrk", "taskset": "util-linux", "h2load": "nghttp2-client"}


def _which(name: str) -> str | None:
    # nginx lives in /usr/sbin, which is not on every user's PATH.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return found


def _gateway_exe(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def find_tools(
    *, need_taskset: bool, need_h2load: bool = False, need_grpc: bool = False
) -> tuple[Tools | None, list[str]]:
    """The tools, or None and one line per missing tool saying how to get it."""
    missing = []
    if not Path("/proc/stat").exists():
        missing.append("/proc (the benchmark reads CPU time and RSS from Linux's /proc)")
    found = {}
    optional = [*(["taskset"] if need_taskset else []), *(["h2load"] if need_h2load else [])]
    for name in ("nginx", "wrk", *optional):
        found[name] = _which(name)
        if found[name] is None:
            missing.append(f"{name}: apt-get install -y {_APT[name]}")
    if need_grpc and importlib.util.find_spec("grpc") is None:
        missing.append("grpcio (the gRPC load client and pod): make .venv/.installed")
    for name in ("tier1-gateway", "tier2-gateway"):
        found[name] = _gateway_exe(name)
        if found[name] is None:
            missing.append(f"{name}: run with the project venv (make bench, or .venv/bin/python)")
    if missing:
        return None, missing
    tools = Tools(
        nginx=str(found["nginx"]),
        tier1=str(found["tier1-gateway"]),
        tier2=str(found["tier2-gateway"]),
        cert_dir=Path(),
    )
    return tools, []


def with_cert_dir(tools: Tools, cert_dir: Path) -> Tools:
    return replace(tools, cert_dir=cert_dir)


def pinning(wanted: bool, workers: int = 1) -> Pinning:
    """wrk and the backend on CPU 0, every proxy on CPU 1, when the machine has two CPUs; with
    ``workers`` > 1 the proxies get CPUs 1..workers where the machine has them (else they
    share what there is: on two CPUs, N workers on CPU 1 show the cost of N processes, not
    their scaling)."""
    cpus = sorted(os.sched_getaffinity(0))
    if wanted and len(cpus) >= 2:
        proxies = cpus[1 : 1 + workers]
        proxy_set = ",".join(map(str, proxies)) if len(proxies) > 1 else ""
        return Pinning(load=cpus[0], proxy=cpus[1], proxy_set=proxy_set)
    return Pinning(load=None, proxy=None)


def describe(pin: Pinning) -> str:
    if pin.load is None:
        return "pinning: off (fewer than 2 CPUs or --no-pin); numbers are noisier"
    return (
        f"pinning: wrk + backend on CPU {pin.load}, every proxy process on CPU "
        f"{pin.proxy_set or pin.proxy}"
    )


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def metadata(pin: Pinning) -> dict[str, object]:
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _first_line([_which("nginx") or "nginx", "-v"]),
        "wrk": _first_line(["wrk", "-v"]),
        "git_commit": _first_line(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "git_dirty": bool(_first_line(["git", "-C", str(REPO), "status", "--porcelain"])),
        "pinning": {"load_cpu": pin.load, "proxy_cpu": pin.proxy_set or pin.proxy},
    }
