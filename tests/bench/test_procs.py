"""Benchmark: process start/stop by session, /proc CPU and RSS readings, busy fractions."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.procs import (
    ProcessSet,
    StartError,
    busy_fraction,
    cpu_busy_ticks,
    cpu_seconds,
    http_get,
    machine_busy,
    process_tree,
    rss_bytes,
    wait_until,
)

# A parent that forks a grandchild, like nginx's master and worker.
FORKING = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


def _wait_for_children(pid: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tree = process_tree(pid)
        if len(tree) == 2:
            return tree
        time.sleep(0.02)
    raise AssertionError("grandchild never appeared")


def test_stop_all_ends_the_whole_session(tmp_path: Path) -> None:
    """Stopping a started process also ends what it forked, and the log is captured."""
    procs = ProcessSet(tmp_path)
    proc = procs.start("forker", [sys.executable, "-c", FORKING])
    tree = _wait_for_children(proc.pid)
    assert tree[0] == proc.pid
    # The fork can show before the parent prints: wait (bounded) for the line it must log.
    wait_until(lambda: "up" in proc.log_tail(), proc, timeout=10, what="the 'up' line")
    procs.stop_all(grace=5.0)
    assert not proc.alive()
    # A signalled process dies asynchronously: wait (bounded) until each one is gone or a zombie.
    lingering = _wait_until_ended(tree, timeout=10.0)
    assert not lingering, f"still running 10 s after stop_all: {lingering}"
    assert "up" in proc.log_tail()
    procs.stop_all()


def _wait_until_ended(pids: list[int], timeout: float) -> list[int]:
    """The pids still running (present in /proc and not a zombie) when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        running = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not _is_zombie(pid)]
        if not running or time.monotonic() >= deadline:
            return running
        time.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_wait_until_reports_an_early_exit(tmp_path: Path) -> None:
    """A process that dies before it is ready fails fast with its output."""
    procs = ProcessSet(tmp_path)
    proc = procs.start("dies", [sys.executable, "-c", "print('bad config'); raise SystemExit(3)"])
    with pytest.raises(StartError, match="exited with 3") as info:
        wait_until(lambda: False, proc, timeout=10, what="readiness")
    assert "bad config" in str(info.value)
    procs.stop_all()


def test_wait_until_times_out(tmp_path: Path) -> None:
    """A live process that never becomes ready fails after the timeout."""
    procs = ProcessSet(tmp_path)
    proc = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(StartError, match="no readiness after"):
            wait_until(lambda: False, proc, timeout=0.2, what="readiness")
    finally:
        procs.stop_all()


def test_cpu_and_rss_of_this_process() -> None:
    """CPU time grows when this process computes; RSS is in bytes and plausible."""
    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.1
    while time.process_time() < deadline:
        pass
    assert cpu_seconds([os.getpid()]) >= before + 0.05
    assert 5 * 2**20 < rss_bytes(os.getpid()) < 4 * 2**30
    assert cpu_seconds([2**22 + 12345]) == 0.0


def test_busy_fraction_arithmetic() -> None:
    """Busy share is the busy-tick delta over the total-tick delta of that CPU."""
    before = {0: (100, 1000), 1: (50, 1000)}
    after = {0: (400, 1400), 1: (50, 1000)}
    assert busy_fraction(before, after, 0) == 0.75
    assert busy_fraction(before, after, 1) == 0.0
    assert busy_fraction(before, after, 7) == 0.0
    assert set(cpu_busy_ticks()) == set(range(len(cpu_busy_ticks())))


def test_http_get_without_server() -> None:
    """Nothing listening gives status 0 instead of an exception."""
    assert http_get("http://127.0.0.1:9/", timeout=0.5) == (0, b"")


def test_machine_busy_sees_a_spinning_thread() -> None:
    """A thread burning CPU during the sample shows up as at least half a busy core."""
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        busy = machine_busy(0.3)
    finally:
        stop.set()
        thread.join()
    assert 0.5 <= busy <= (os.cpu_count() or 1) + 0.01
