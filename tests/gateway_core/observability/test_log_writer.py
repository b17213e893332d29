"""Observability: the access log's writer thread: the event loop never blocks on a stalled log,
what cannot be written is bounded, dropped and counted, and writing resumes when the reader
does."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from gateway_core.observability.access_log import AccessLog
from gateway_core.observability.log_writer import LogWriter

LINE = b"x" * 199 + b"\n"


def _wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_stalled_pipe_never_blocks_the_caller_and_losses_are_counted() -> None:
    """Nobody reads the pipe: the writer thread blocks once the kernel's buffer is full, but
    ``submit`` keeps returning at once; what waits is bounded; the rest is dropped and counted.
    When the reader comes back, new lines get through again."""
    read_fd, write_fd = os.pipe()
    stream = os.fdopen(write_fd, "wb")
    writer = LogWriter(stream, max_pending=64 << 10)
    accepted = refused = 0
    slowest = 0.0
    for _ in range(5000):  # 1 MB of lines, far more than the pipe and the queue hold
        started = time.perf_counter()
        if writer.submit(LINE * 1, 1):
            accepted += 1
        else:
            refused += 1
        slowest = max(slowest, time.perf_counter() - started)
    assert refused > 0
    assert writer.dropped_lines == refused
    assert writer.pending_bytes <= writer.max_pending
    assert slowest < 0.5, f"submit blocked for {slowest:.3f}s"

    received = bytearray()

    def read_all() -> None:
        while True:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    assert writer.drain(5.0), "the writer did not catch up once the pipe was read"
    assert writer.submit(b"after\n", 1)
    assert writer.drain(5.0)
    writer.close()
    stream.close()
    reader.join(5.0)
    os.close(read_fd)
    assert received.endswith(b"after\n")
    assert received.count(b"\n") == accepted + 1  # every accepted line arrived, whole
    assert writer.written_lines == accepted + 1


class _Broken:
    def write(self, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        pass


async def test_write_errors_are_counted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing write drops its lines, counts the error, and the process log says so once
    (with the error), never per line."""
    log = AccessLog("off")
    log.enabled = True
    log.writer = LogWriter(_Broken())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gateway.access_log"):
        for _ in range(3):
            log.record(
                method=b"GET",
                authority=b"a",
                path=b"/",
                status=200,
                flags="-",
                duration=0.001,
                upstream_host="-",
                cluster="-",
                route="-",
                attempts=1,
                bytes_received=0,
                bytes_sent=0,
                request_id=b"r",
                client="127.0.0.1",
            )
        log.sync()
        assert (log.dropped_lines, log.write_errors) == (3, 1)
        log.flush()  # the next flush reports the loss
        log.record(
            method=b"GET",
            authority=b"a",
            path=b"/",
            status=200,
            flags="-",
            duration=0.001,
            upstream_host="-",
            cluster="-",
            route="-",
            attempts=1,
            bytes_received=0,
            bytes_sent=0,
            request_id=b"r",
            client="127.0.0.1",
        )
        log.flush()
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1
    assert "No space left on device" in warnings[0]
    log.close()
