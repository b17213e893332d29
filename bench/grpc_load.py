"""Data path (benchmark): gRPC load client, ``python bench/grpc_load.py --target HOST:PORT``.

N channels, each its own HTTP/2 connection (a local subchannel pool, so grpcio does not share
one connection between them), keep M unary calls in flight each to bench/grpc_pod.py's
``/bench.v1.Bench/Ping`` for D seconds, or until ``--max-calls`` calls have been made, whichever
comes first. Plaintext (h2c with prior knowledge), grpc.aio on one event loop. Before the clock
starts every channel makes one unmeasured call; if that fails, the run stops with the gRPC
status and message on stderr and exit code 1, so a server that does not speak HTTP/2 is named
as such instead of being measured. The result is one JSON object on stdout: calls completed OK,
failed calls by status code, calls per second, and latency percentiles of the OK calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: import the bench package from the repository root
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import grpc
import grpc.aio

from bench.grpc_pod import FULL_METHOD, REQUEST
from bench.load import LoadError, LoadReport, RunResult, measure_command, nearest_rank, pinned

CONNECT_TIMEOUT = 5.0
CALL_TIMEOUT = 10.0
MAX_CALLS = 2_000_000
"""Default bound on the calls of one run (about 16 MB of latency samples)."""


class GrpcLoadError(LoadError):
    """The load client could not start its calls, or printed something that is not its JSON."""


@dataclass(frozen=True, slots=True)
class GrpcLoadResult:
    target: str
    channels: int
    concurrency: int
    calls: int
    """Calls that ended with status OK."""
    failed: int
    failed_by_code: dict[str, int]
    seconds: float
    calls_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def summarize(
    target: str,
    channels: int,
    concurrency: int,
    latencies_ns: list[int],
    failed: Counter[str],
    seconds: float,
) -> GrpcLoadResult:
    ordered = sorted(latencies_ns)
    ms = 1e-6
    return GrpcLoadResult(
        target=target,
        channels=channels,
        concurrency=concurrency,
        calls=len(ordered),
        failed=sum(failed.values()),
        failed_by_code=dict(sorted(failed.items())),
        seconds=seconds,
        calls_per_s=len(ordered) / seconds if seconds > 0 else 0.0,
        mean_ms=sum(ordered) / len(ordered) * ms if ordered else 0.0,
        p50_ms=nearest_rank(ordered, 50) * ms,
        p90_ms=nearest_rank(ordered, 90) * ms,
        p99_ms=nearest_rank(ordered, 99) * ms,
        max_ms=ordered[-1] * ms if ordered else 0.0,
    )


async def _first_call(channel: grpc.aio.Channel, target: str, limit_s: float) -> None:
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(FULL_METHOD)
    try:
        await call(REQUEST, timeout=limit_s)
    except grpc.aio.AioRpcError as exc:
        raise GrpcLoadError(
            f"first call to {target} failed: {exc.code().name}: {exc.details()} "
            "(does the server speak HTTP/2 / gRPC on this port?)"
        ) from exc


async def run_load(
    target: str,
    *,
    channels: int,
    concurrency: int,
    duration: float,
    max_calls: int = MAX_CALLS,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> GrpcLoadResult:
    """Bounded in time (``duration`` plus at most one call timeout) and in calls."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    try:
        await asyncio.gather(*(_first_call(ch, target, connect_timeout) for ch in opened))
        latencies: list[int] = []
        failed: Counter[str] = Counter()
        budget = [max_calls]
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = start + duration

        async def worker(channel: grpc.aio.Channel) -> None:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]
            call = channel.unary_unary(FULL_METHOD)
            while budget[0] > 0 and loop.time() < deadline:
                budget[0] -= 1
                t0 = time.perf_counter_ns()
                try:
                    await call(REQUEST, timeout=CALL_TIMEOUT)
                except grpc.aio.AioRpcError as exc:
                    failed[exc.code().name] += 1
                    continue
                latencies.append(time.perf_counter_ns() - t0)

        await asyncio.gather(*(worker(ch) for ch in opened for _ in range(concurrency)))
        seconds = loop.time() - start
    finally:
        await asyncio.gather(*(ch.close() for ch in opened))
    return summarize(target, channels, concurrency, latencies, failed, seconds)


def parse_grpc_load(output: str) -> LoadReport:
    """The JSON printed by this client as the benchmark's common report."""
    try:
        doc = json.loads(output)
        return LoadReport(
            requests=int(doc["calls"]),
            seconds=float(doc["seconds"]),
            rps=float(doc["calls_per_s"]),
            p50_ms=float(doc["p50_ms"]),
            p99_ms=float(doc["p99_ms"]),
            socket_errors=0,
            non_2xx_3xx=int(doc["failed"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise GrpcLoadError(f"cannot parse grpc_load output ({exc}):\n{output}") from exc


def load_argv(
    target: str, *, channels: int, concurrency: int, duration: float, max_calls: int = MAX_CALLS
) -> list[str]:
    """This client's command line, run with the benchmark's interpreter."""
    return [
        sys.executable,
        str(Path(__file__).resolve()),
        "--target",
        target,
        "--channels",
        str(channels),
        "--concurrency",
        str(concurrency),
        "--duration",
        f"{duration:g}",
        "--max-calls",
        str(max_calls),
    ]


def measure(
    target: str,
    proxy_roots: Sequence[int],
    backend_roots: Sequence[int],
    *,
    duration: float,
    channels: int,
    concurrency: int,
    load_cpu: int | None,
    proxy_cpu: int | None,
) -> RunResult:
    """One run of this client, pinned to the load core, measured like a wrk run."""
    argv = load_argv(target, channels=channels, concurrency=concurrency, duration=duration)
    return measure_command(
        pinned(argv, load_cpu),
        parse_grpc_load,
        proxy_roots,
        backend_roots,
        duration=duration,
        load_cpu=load_cpu,
        proxy_cpu=proxy_cpu,
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/grpc_load.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="HOST:PORT of the gRPC server (plaintext)")
    p.add_argument("--channels", type=int, default=1, help="HTTP/2 connections (default 1)")
    p.add_argument("--concurrency", type=int, default=1, help="calls in flight per channel")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of load (default 5)")
    p.add_argument("--max-calls", type=int, default=MAX_CALLS, help="stop after this many calls")
    a = p.parse_args(argv)
    if min(a.channels, a.concurrency, a.max_calls) < 1 or a.duration <= 0:
        p.error("--channels, --concurrency, --max-calls and --duration must be positive")
    try:
        result = asyncio.run(
            run_load(
                a.target,
                channels=a.channels,
                concurrency=a.concurrency,
                duration=a.duration,
                max_calls=a.max_calls,
            )
        )
    except GrpcLoadError as exc:
        print(f"grpc_load: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
