"""Observability: the access log's writer thread, so the event loop never blocks on the log.

The loop hands over whole batches (``submit``): one lock acquisition and a deque append, never
a system call. A daemon thread writes them to the file or pipe. What is waiting is bounded
(``max_pending`` bytes): when the reader of a pipe stalls, or a disk is slow, new batches are
dropped and their lines counted (``dropped_lines``) instead of stalling every client or growing
without limit. A failed write is counted (``write_errors``, ``last_error``) and its lines are
counted as dropped; the process keeps serving. ``AccessLog`` reports both as metrics and warns
in the process log.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import BinaryIO

MAX_PENDING = 4 << 20
"""Bytes of log lines that may wait for the writer (a few seconds of a busy gateway)."""


class LogWriter:
    __slots__ = (
        "_closed",
        "_cond",
        "_pending",
        "_pending_bytes",
        "_stream",
        "_thread",
        "dropped_lines",
        "last_error",
        "max_pending",
        "write_errors",
        "written_lines",
    )

    def __init__(self, stream: BinaryIO, max_pending: int = MAX_PENDING) -> None:
        self._stream = stream
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._pending: deque[tuple[bytes, int]] = deque()
        self._pending_bytes = 0
        self._closed = False
        self.dropped_lines = 0
        self.written_lines = 0
        self.write_errors = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="access-log writer", daemon=True)
        self._thread.start()

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def submit(self, data: bytes, lines: int) -> bool:
        """Queue ``data`` (``lines`` log lines); False (and counted) when the queue is full."""
        with self._cond:
            if self._closed or self._pending_bytes + len(data) > self.max_pending:
                self.dropped_lines += lines
                return False
            self._pending.append((data, lines))
            self._pending_bytes += len(data)
            self._cond.notify_all()
        return True

    def drain(self, timeout: float) -> bool:
        """Wait (off the event loop: tools and tests) until everything queued was written or
        failed; False when ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending_bytes == 0, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (for at most ``timeout`` seconds), then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        cond, pending = self._cond, self._pending
        while True:
            with cond:
                while not pending and not self._closed:
                    cond.wait()
                if not pending:
                    return
                batches = list(pending)
                pending.clear()
            data = b"".join(batch for batch, _ in batches)
            lines = sum(count for _, count in batches)
            try:
                self._stream.write(data)
                self._stream.flush()
            except (OSError, ValueError) as exc:  # a closed or broken log; keep serving
                with cond:
                    self.write_errors += 1
                    self.dropped_lines += lines
                    self.last_error = f"{type(exc).__name__}: {exc}"
            else:
                with cond:
                    self.written_lines += lines
            with cond:
                self._pending_bytes -= len(data)
                cond.notify_all()
