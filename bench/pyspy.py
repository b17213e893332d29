"""Data path (benchmark): samples a gateway with py-spy under load and ranks its hot functions.

``py-spy record --gil --format raw`` writes collapsed stacks (``outer;...;leaf count``) of the
samples where a thread held the GIL, i.e. the gateway was running rather than waiting in epoll
(uvloop releases the GIL there). A function's *self* share counts the samples where it is the
leaf, which includes the C calls it makes (uvloop's ``transport.write`` and its ``send``
syscall show up as the self time of the Python function calling it); its *inclusive* share
counts the samples where it appears anywhere in the stack, once per sample. Stacks of helper
threads (a thread pool parked on a lock is sometimes reported as active) are left out: the
gateway's data path runs on the event-loop thread only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# Frames that are on every stack and say nothing about where the time goes.
_ROOT_FRAMES = ("<module>", "main (", "_run (", "run (uvloop", "Runner.run (")
_THREAD_FRAMES = ("Thread._bootstrap (", "_bootstrap (threading")


@dataclass(frozen=True, slots=True)
class HotSpot:
    function: str
    self_pct: float
    inclusive_pct: float


@dataclass(frozen=True, slots=True)
class Profile:
    samples: int
    by_self: tuple[HotSpot, ...]
    by_inclusive: tuple[HotSpot, ...]


def find_py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def parse_collapsed(text: str, top: int = 15) -> Profile:
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(f.startswith(_THREAD_FRAMES) for f in frames):
            continue
        total += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            incl_counts[frame] += count
    if total == 0:
        return Profile(0, (), ())

    def spot(name: str) -> HotSpot:
        return HotSpot(name, 100.0 * self_counts[name] / total, 100.0 * incl_counts[name] / total)

    inclusive = [n for n, _ in incl_counts.most_common() if not n.startswith(_ROOT_FRAMES)]
    return Profile(
        samples=total,
        by_self=tuple(spot(n) for n, _ in self_counts.most_common(top)),
        by_inclusive=tuple(spot(n) for n in inclusive[:top]),
    )


def start_record(
    py_spy: str, pid: int, duration: float, out: Path, *, native: bool
) -> subprocess.Popen[bytes]:
    argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(duration)))]
    argv += ["--gil", "--format", "raw", "--nolineno", "--output", str(out)]
    if native:
        argv.append("--native")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish_record(popen: subprocess.Popen[bytes], out: Path, timeout: float) -> Profile:
    """Wait for py-spy and parse its output; raises RuntimeError with py-spy's message."""
    try:
        _, err = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.communicate()
        raise RuntimeError("py-spy did not finish in time") from None
    if popen.returncode != 0 or not out.exists():
        message = err.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"py-spy failed ({popen.returncode}): {' / '.join(message[:3])}")
    return parse_collapsed(out.read_text())
