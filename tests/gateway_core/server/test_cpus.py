"""Tests: ``--workers auto`` arithmetic (affinity and cgroup v1/v2 quotas) on fake file trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_core.server.cpus import available_cpus, cgroup_cpu_limit


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("cpu_max", "affinity", "expected"),
    [
        ("150000 100000\n", 8, 2),  # 1.5 CPUs round up to 2
        ("200000 100000\n", 8, 2),
        ("50000 100000\n", 8, 1),  # half a CPU: at least 1
        ("400000 100000\n", 3, 3),  # affinity is the smaller bound
        ("max 100000\n", 6, 6),  # no quota
    ],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, affinity: int, expected: int) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/kubepods/pod1/c1\n",
            "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": cpu_max,
        },
    )
    assert available_cpus(root, lambda: affinity) == expected


def test_cgroup_v2_at_the_namespace_root(tmp_path: Path) -> None:
    """Inside a container the own cgroup is ``/``: ``/sys/fs/cgroup/cpu.max``."""
    root = _tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": "250000 100000"})
    assert cgroup_cpu_limit(root) == 2.5
    assert available_cpus(root, lambda: 16) == 3


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(root) == 3.0
    assert available_cpus(root, lambda: 8) == 3


def test_cgroup_v1_unlimited_and_no_cgroup(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:cpu:/x\n",
            "sys/fs/cgroup/cpu/x/cpu.cfs_quota_us": "-1\n",
            "sys/fs/cgroup/cpu/x/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cgroup_cpu_limit(root) is None
    assert available_cpus(root, lambda: 4) == 4
    assert available_cpus(tmp_path / "empty", lambda: 0) == 1  # never below one worker


def test_this_machine_gives_at_least_one() -> None:
    assert available_cpus() >= 1
