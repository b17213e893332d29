"""Control path: how many CPUs this process may use (``--workers auto``).

The answer is the smaller of the scheduler affinity (``taskset``, cpusets) and the cgroup CPU
quota, rounded up, at least 1 -- the number a Kubernetes CPU limit gives a container:

* cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"`` (no limit);
* cgroup v1: ``cpu.cfs_quota_us`` (``-1``: no limit) over ``cpu.cfs_period_us``.

A limit of 1.5 CPUs gives 2 workers (rounded up, as Go's automaxprocs and the JVM round a
fractional quota). The process's own cgroup is found in ``/proc/self/cgroup``; the files are
read under ``root`` so tests point it at a fake tree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path


def available_cpus(
    root: Path = Path("/"),
    affinity: Callable[[], int] | None = None,
) -> int:
    """CPUs this process may use: ``min(affinity, ceil(quota / period))``, at least 1."""
    count = (affinity or _affinity)()
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """The cgroup CPU quota in CPUs (``quota / period``), or None when there is none."""
    for directory in _cgroup_dirs(root):
        limit = _v2_limit(directory / "cpu.max")
        if limit is None:
            limit = _v1_limit(directory)
        if limit is not None:
            return limit
    return None


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cgroup_dirs(root: Path) -> list[Path]:
    """The process's own cgroup directories (v2 unified, v1 ``cpu`` controller), then the
    mount roots (a container sees its own cgroup at the root of its namespace)."""
    base = root / "sys/fs/cgroup"
    dirs: list[Path] = []
    try:
        lines = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = [*line.split(":", 2), "", ""][:3]
        rel = path.strip().lstrip("/")
        if controllers == "":
            dirs.append(base / rel)
        elif "cpu" in controllers.split(","):
            dirs.extend((base / "cpu" / rel, base / "cpu,cpuacct" / rel))
    dirs.extend((base, base / "cpu", base / "cpu,cpuacct"))
    return dirs


def _v2_limit(path: Path) -> float | None:
    try:
        fields = path.read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
        period = int((directory / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None
