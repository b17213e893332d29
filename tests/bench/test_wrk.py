"""Benchmark: parsing wrk's --latency report and the per-run derived figures."""

from __future__ import annotations

import pytest

from bench.wrk import RunResult, WrkError, WrkReport, duration_ms, parse_wrk, wrk_argv

CLEAN = """Running 5s test @ http://127.0.0.1:19002/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.83ms    1.51ms  24.20ms   90.72%
    Req/Sec    18.32k     3.54k   23.05k    54.00%
  Latency Distribution
     50%    2.47ms
     75%    2.91ms
     90%    4.03ms
     99%    9.40ms
  91304 requests in 5.01s, 11.58MB read
Requests/sec:  18207.66
Transfer/sec:      2.31MB
"""

WITH_ERRORS = """Running 10s test @ http://127.0.0.1:1/
  1 threads and 50 connections
  Latency Distribution
     50%  446.00us
     75%  491.00us
     90%  536.00us
     99%    1.02s
  1200 requests in 10.00s, 56.93MB read
  Socket errors: connect 3, read 4, write 5, timeout 6
  Non-2xx or 3xx responses: 7
Requests/sec:    120.00
Transfer/sec:     11.38MB
"""


def test_parses_clean_report() -> None:
    """Requests, duration, rps and the 50th/99th percentiles are read exactly."""
    assert parse_wrk(CLEAN) == WrkReport(
        requests=91304,
        seconds=5.01,
        rps=18207.66,
        p50_ms=2.47,
        p99_ms=9.40,
        socket_errors=0,
        non_2xx_3xx=0,
    )


def test_parses_errors_and_mixed_units() -> None:
    """Socket errors are summed, non-2xx counted, and µs/s latencies converted to ms."""
    report = parse_wrk(WITH_ERRORS)
    assert report.socket_errors == 18
    assert report.non_2xx_3xx == 7
    assert report.p50_ms == pytest.approx(0.446)
    assert report.p99_ms == pytest.approx(1020.0)


def test_unparseable_output_raises() -> None:
    """Output without the latency table is an error, not a silent zero."""
    with pytest.raises(WrkError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_duration_units() -> None:
    """Every unit wrk prints converts to milliseconds."""
    assert duration_ms("250.00us") == pytest.approx(0.25)
    assert duration_ms("3.5ms") == 3.5
    assert duration_ms("2s") == 2000.0
    assert duration_ms("1.5m") == 90_000.0
    with pytest.raises(WrkError):
        duration_ms("5 parsecs")


def test_argv_pins_and_rounds_duration() -> None:
    """wrk runs with one thread, pinned when a CPU is given, for whole seconds (at least 1)."""
    assert wrk_argv("http://x/", duration=2.6, connections=50, cpu=0) == [
        "taskset",
        "-c",
        "0",
        "wrk",
        "-t1",
        "-c50",
        "-d3s",
        "--latency",
        "http://x/",
    ]
    assert wrk_argv("http://x/", duration=0.2, connections=1, cpu=None)[:4] == [
        "wrk",
        "-t1",
        "-c1",
        "-d1s",
    ]


def test_run_result_derived_figures() -> None:
    """CPU µs/request, proxy cores and other processes' cores follow from the raw counters."""
    report = WrkReport(20_000, 10.0, 2000.0, 1.0, 2.0, 0, 0)
    run = RunResult(
        report=report,
        proxy_cpu_s=1.0,
        wall_s=10.0,
        load_core_busy=0.5,
        proxy_core_busy=0.1,
        proxy_system_s=0.25,
        wrk_cpu_s=2.0,
        backend_cpu_s=1.0,
        machine_busy_cores=0.6,
    )
    assert run.cpu_us_per_request == 50.0
    assert run.system_us_per_request == 12.5
    assert run.proxy_cores == 0.1
    assert run.other_cores == pytest.approx(0.2)
    idle = RunResult(WrkReport(0, 1.0, 0.0, 0.0, 0.0, 0, 0), 0.0, 0.0, 0.0, 0.0)
    assert idle.cpu_us_per_request == 0.0
    assert idle.system_us_per_request == 0.0
    assert idle.proxy_cores == 0.0
    assert idle.other_cores == 0.0
