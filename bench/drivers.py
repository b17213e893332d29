"""Data path (benchmark): runs the load generator of a path: wrk, h2load or the gRPC client.

``check`` is a short, count-bounded exchange made once when a path comes up, so that a path
that does not work end to end (a proxy that does not speak HTTP/2, a wrong route) fails with
the load generator's own words before anything is measured. ``run`` is one measured run,
pinned as the method says (load generator on the load core, proxies on theirs).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench import grpc_load, h2load, wrk
from bench.load import LoadError, RunResult
from bench.topology import BenchPath, Pinning, check_http

CHECK_REQUESTS = 20
CHECK_TIMEOUT = 30.0


def check(path: BenchPath) -> None:
    """Raises ``RuntimeError`` (a ``LoadError`` for h2load and gRPC) when ``path`` does not
    answer as it should."""
    if path.load.tool == "wrk":
        check_http(path)
    elif path.load.tool == "h2load":
        _check_h2(path)
    else:
        _check_grpc(path)


def _output(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=CHECK_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"{what}: no answer within {CHECK_TIMEOUT:.0f}s") from exc


def _check_h2(path: BenchPath) -> None:
    argv = h2load.h2load_argv(
        path.url, path.load.target, clients=1, streams=10, cpu=None, requests=CHECK_REQUESTS
    )
    done = _output(argv, f"{path.key}: h2load")
    if done.returncode != 0:
        raise h2load.H2loadError(f"{path.key}: h2load exited {done.returncode}: {done.stderr}")
    try:
        report = h2load.checked(h2load.parse_h2load(done.stdout))
    except h2load.H2loadError as exc:
        raise h2load.H2loadError(f"{path.key}: {exc}") from exc
    if report.status_2xx != CHECK_REQUESTS:
        raise h2load.H2loadError(
            f"{path.key}: {report.status_2xx} of {CHECK_REQUESTS} requests over h2 got a 2xx "
            f"({report.status_4xx} 4xx, {report.status_5xx} 5xx, {report.errored} errored)"
        )


def _check_grpc(path: BenchPath) -> None:
    argv = grpc_load.load_argv(
        path.load.target, channels=1, concurrency=1, duration=5.0, max_calls=CHECK_REQUESTS
    )
    done = _output(argv, f"{path.key}: grpc_load")
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise grpc_load.GrpcLoadError(f"{path.key}: {detail[0]}")
    report = grpc_load.parse_grpc_load(done.stdout)
    if report.requests != CHECK_REQUESTS or report.non_2xx_3xx:
        raise grpc_load.GrpcLoadError(
            f"{path.key}: {report.requests} of {CHECK_REQUESTS} calls ended OK: {done.stdout}"
        )


def run(
    path: BenchPath, duration: float, *, pin: Pinning, connections: int, scratch: Path
) -> RunResult:
    """One measured run of ``path``; ``connections`` is wrk's, ``scratch`` holds h2load's
    request log while it is read."""
    proxies = [p.pid for p in path.proxies]
    backends = [path.backend.pid]
    if path.load.tool == "wrk":
        return wrk.measure(
            path.url,
            proxies,
            backends,
            duration=duration,
            connections=connections,
            load_cpu=pin.load,
            proxy_cpu=pin.proxy,
            headers=path.load.headers,
        )
    if path.load.tool == "h2load":
        return h2load.measure(
            path.url,
            path.load.target,
            proxies,
            backends,
            duration=duration,
            clients=path.load.clients,
            streams=path.load.streams,
            log_file=scratch / f"h2load-{path.key}.log",
            load_cpu=pin.load,
            proxy_cpu=pin.proxy,
        )
    return grpc_load.measure(
        path.load.target,
        proxies,
        backends,
        duration=duration,
        channels=path.load.clients,
        concurrency=path.load.streams,
        load_cpu=pin.load,
        proxy_cpu=pin.proxy,
    )
