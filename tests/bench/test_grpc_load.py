"""Benchmark: the gRPC pod and load client, against each other on loopback.

The pod runs as its own process (``bench/grpc_pod.py --port 0``), the load client as a process
or in-process; every run is bounded by a call count and a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from bench import grpc_pod
from bench.grpc_load import (
    GrpcLoadError,
    load_argv,
    parse_grpc_load,
    run_load,
    summarize,
)
from bench.topology import free_port

POD = Path(grpc_pod.__file__)
START_TIMEOUT = 20.0


@pytest.fixture
def pod_port() -> Iterator[int]:
    """A gRPC pod process on a free loopback port, stopped afterwards."""
    proc = subprocess.Popen(
        [sys.executable, str(POD), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        line = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + START_TIMEOUT
            while not line.startswith("listening on") and time.monotonic() < deadline:
                if sel.select(timeout=deadline - time.monotonic()):
                    line = proc.stdout.readline()
                    if not line:
                        break
        assert line.startswith("listening on 127.0.0.1:"), f"pod did not start: {line!r}"
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_pod_answers_the_fixed_message(pod_port: int) -> None:
    """One call with a plain grpcio channel gets the pod's protobuf-encoded "ok"."""

    async def call() -> bytes:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{pod_port}") as channel:
            ping: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
            ping = channel.unary_unary(grpc_pod.FULL_METHOD)
            return await ping(grpc_pod.REQUEST, timeout=5)

    assert asyncio.run(call()) == b"\x0a\x02ok" == grpc_pod.RESPONSE


def test_load_client_process_reports_json(pod_port: int) -> None:
    """The client as the benchmark runs it: 2 channels x 3 calls in flight, stopped by
    --max-calls long before its 20 s; every call OK, percentiles ordered."""
    argv = load_argv(f"127.0.0.1:{pod_port}", channels=2, concurrency=3, duration=20, max_calls=300)
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - start < 15
    doc = json.loads(done.stdout)
    assert (doc["calls"], doc["failed"], doc["failed_by_code"]) == (300, 0, {})
    assert (doc["channels"], doc["concurrency"]) == (2, 3)
    assert 0 < doc["p50_ms"] <= doc["p90_ms"] <= doc["p99_ms"] <= doc["max_ms"]
    assert doc["calls_per_s"] == pytest.approx(300 / doc["seconds"])
    report = parse_grpc_load(done.stdout)
    assert (report.requests, report.non_2xx_3xx, report.socket_errors) == (300, 0, 0)
    assert (report.rps, report.p50_ms, report.p99_ms) == (
        doc["calls_per_s"],
        doc["p50_ms"],
        doc["p99_ms"],
    )


def _established_to(port: int) -> int:
    """Established TCP connections whose local port is ``port`` (the server's ends)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                count += 1
    return count


def test_each_channel_is_its_own_connection(pod_port: int) -> None:
    """Three channels open three HTTP/2 connections to the pod (grpcio would otherwise share
    one subchannel between channels with the same target), and the duration bound stops
    the run."""

    async def scenario() -> tuple[int, float]:
        load = asyncio.ensure_future(
            run_load(f"127.0.0.1:{pod_port}", channels=3, concurrency=2, duration=1.5)
        )
        seen = 0
        while not load.done():
            seen = max(seen, _established_to(pod_port))
            await asyncio.sleep(0.05)
        result = await load
        return seen, result.seconds

    seen, seconds = asyncio.run(scenario())
    assert seen == 3
    assert 1.5 <= seconds < 5


def test_unreachable_target_fails_cleanly() -> None:
    """Nothing listening: exit 1 with the gRPC status on stderr, no traceback, no JSON."""
    argv = load_argv(f"127.0.0.1:{free_port()}", channels=1, concurrency=1, duration=1)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "grpc_load: first call to 127.0.0.1:" in done.stderr
    assert "UNAVAILABLE" in done.stderr
    assert "Traceback" not in done.stderr


def test_summary_percentiles_and_failures() -> None:
    """Nearest-rank percentiles over the OK calls; failures counted by status code."""
    result = summarize(
        "t",
        1,
        1,
        [ms * 1_000_000 for ms in range(100, 0, -1)],
        Counter({"UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1}),
        2.0,
    )
    assert (result.calls, result.calls_per_s) == (100, 50.0)
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == (50, 90, 99, 100)
    assert result.mean_ms == 50.5
    assert result.failed == 3
    assert result.failed_by_code == {"DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 2}


def test_unparseable_output_raises() -> None:
    """Anything but the client's JSON is an error."""
    with pytest.raises(GrpcLoadError, match="cannot parse grpc_load output"):
        parse_grpc_load("")
    with pytest.raises(GrpcLoadError):
        parse_grpc_load('{"calls": 1}')
