"""Benchmark: counting system calls per request from strace's summary."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.syscalls import (
    SyscallCount,
    find_strace,
    format_counts,
    parse_summary,
    start_strace,
    stop_strace,
)

SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 67.16    0.222442          11     18747        47 write
 21.92    0.072593           5     12502         3 read
  8.14    0.026969           4      6249           getrandom
  1.68    0.005570          16       337           epoll_pwait
------ ----------- ----------- --------- --------- ----------------
100.00    0.331233           8     37835        50 total
"""


def test_summary_per_request() -> None:
    """Calls are divided by the request count, most frequent first, 'total' ignored."""
    counts = parse_summary(SUMMARY, 6249)
    assert [c.name for c in counts] == ["write", "read", "getrandom", "epoll_pwait"]
    assert counts[0] == SyscallCount("write", 18747, 3.0)
    assert counts[2].per_request == 1.0
    assert parse_summary(SUMMARY, 6249, top=1) == [counts[0]]
    assert parse_summary(SUMMARY, 0)[0].per_request == 0.0


def test_format_counts_line() -> None:
    """The printed line names the path, the request count and each call per request."""
    line = format_counts("b-ours", 6249, parse_summary(SUMMARY, 6249, top=2))
    assert line == (
        "b-ours: system calls per request (6,249 requests under strace): write 3.00, read 2.00"
    )


@pytest.mark.skipif(find_strace() is None, reason="strace is not installed")
def test_strace_counts_a_real_process(tmp_path: Path) -> None:
    """Attached to a process that writes in a loop, strace's summary shows its writes."""
    code = "import os, time\nwhile True:\n    os.write(1, b'x')\n    time.sleep(0.01)\n"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL)
    try:
        out = tmp_path / "summary.txt"
        strace = start_strace(str(find_strace()), [child.pid], out)
        time.sleep(0.5)
        counts = {c.name: c.calls for c in parse_summary(stop_strace(strace, out), 1, top=20)}
    finally:
        child.kill()
        child.wait()
    if not counts:
        pytest.skip("strace could not attach (ptrace not permitted here)")
    assert counts.get("write", 0) >= 5
