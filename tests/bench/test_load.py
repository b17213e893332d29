"""Benchmark: one load-generator run measured around a real command (CPU, RSS, failures)."""

from __future__ import annotations

import selectors
import subprocess
import sys

import pytest

from bench.load import LoadError, LoadReport, measure_command, nearest_rank, pinned
from bench.procs import rss_bytes


def _report(output: str) -> LoadReport:
    requests = int(output.strip())
    return LoadReport(requests, 1.0, float(requests), 1.0, 2.0, 0, 0)


def test_measures_around_the_command_and_samples_proxy_rss() -> None:
    """The command's output is parsed, and the "proxy" (a live process holding about 20 MB)
    is seen at its RSS while the command runs."""
    hold = "import time; x = b'1' * 20_000_000; print('ready', flush=True); time.sleep(30)"
    proxy = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert proxy.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proxy.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=20), "the stand-in proxy did not start"
        assert proxy.stdout.readline() == "ready\n"
        assert rss_bytes(proxy.pid) >= 20_000_000
        command = [sys.executable, "-c", "import time; time.sleep(0.5); print(1234)"]
        run = measure_command(
            command, _report, [proxy.pid], [], duration=1.0, load_cpu=None, proxy_cpu=None
        )
    finally:
        proxy.kill()
        proxy.communicate()
    assert run.report.requests == 1234
    assert run.wall_s >= 0.5
    assert run.proxy_rss_peak >= 20_000_000
    assert run.wrk_cpu_s > 0


def test_failing_command_is_a_load_error_with_its_message() -> None:
    """A non-zero exit carries the tool's last stderr line and its name, not a traceback."""
    script = "import sys; sys.stderr.write('first\\nno HTTP/2 here\\n'); sys.exit(3)"
    command = [sys.executable, "-c", script]
    with pytest.raises(LoadError, match=r"exited 3: first\nno HTTP/2 here"):
        measure_command(command, _report, [], [], duration=1.0, load_cpu=None, proxy_cpu=None)


def test_nearest_rank_and_pinning() -> None:
    """Nearest-rank percentiles of a sorted sequence; taskset only when a CPU is given."""
    values = list(range(1, 11))
    assert [nearest_rank(values, p) for p in (1, 50, 90, 99, 100)] == [1, 5, 9, 10, 10]
    assert nearest_rank([], 50) == 0
    assert pinned(["h2load", "x"], 0) == ["taskset", "-c", "0", "h2load", "x"]
    assert pinned(["h2load", "x"], None) == ["h2load", "x"]
