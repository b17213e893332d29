"""Data path (benchmark): system calls per request of a proxy, counted with ``strace -c``.

On loopback every ``write``/``send`` runs the peer's TCP receive path and wakes the reader on
the other CPU, so the number of write calls per request weighs heavily on the kernel half of
the proxy's CPU time. strace slows the proxy down a lot, so only the counts are meaningful;
they are normalised by the requests wrk completed while strace was attached.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_SUMMARY_END = "------"


@dataclass(frozen=True, slots=True)
class SyscallCount:
    name: str
    calls: int
    per_request: float


def find_strace() -> str | None:
    return shutil.which("strace")


def parse_summary(text: str, requests: int, top: int = 8) -> list[SyscallCount]:
    """The ``top`` most frequent system calls of a ``strace -c`` summary, per request."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or not fields[3].isdigit() or fields[-1] == "total":
            continue
        counts[fields[-1]] = counts.get(fields[-1], 0) + int(fields[3])
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [
        SyscallCount(name, calls, calls / requests if requests else 0.0) for name, calls in ranked
    ]


def start_strace(strace: str, pids: Sequence[int], out: Path) -> subprocess.Popen[bytes]:
    argv = [strace, "-c", "-f", "-o", str(out)]
    for pid in pids:
        argv += ["-p", str(pid)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_strace(popen: subprocess.Popen[bytes], out: Path, timeout: float = 20.0) -> str:
    """Detach strace (SIGINT makes it write its summary) and return the summary text."""
    popen.send_signal(signal.SIGINT)
    try:
        _, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.communicate()
        raise RuntimeError("strace did not detach in time") from None
    if not out.exists():
        raise RuntimeError(f"strace wrote no summary: {err.decode(errors='replace').strip()}")
    return out.read_text()


def format_counts(key: str, requests: int, counts: Sequence[SyscallCount]) -> str:
    calls = ", ".join(f"{c.name} {c.per_request:.2f}" for c in counts)
    return f"{key}: system calls per request ({requests:,} requests under strace): {calls}"
