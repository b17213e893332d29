"""Benchmark: parsing h2load's report and request log, and refusing runs that did not speak h2.

Every fixture under tests/bench/fixtures/ is real h2load 1.52.0 (Debian nghttp2-client) output,
captured unchanged on this project's machine, not written by hand:

- ``h2load-nginx-1x100.txt``: ``h2load --npn-list=h2 -t1 -c1 -m100 -D 2
  --connect-to=127.0.0.1:<port> --log-file=<file> https://tier2.cluster-1.lab:<port>/`` against
  nginx 1.22.1 with ``listen ... ssl http2`` (bench/configs.py) proxying to the nginx pod;
- ``h2load-nginx-10x10.txt``: the same with ``-c10 -m10``;
- ``h2load-nginx-n200.txt`` and its ``--log-file`` ``h2load-nginx-n200.log``: ``-c1 -m10 -n 200``;
- ``h2load-ours-alpn-refused.txt``: ``-c1 -m10 -n 10`` against our Tier-2 at commit 923ee56,
  whose TLS listener offered only ``http/1.1`` in ALPN.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.h2load import (
    H2loadError,
    checked,
    h2load_argv,
    latency_ms,
    parse_h2load,
    to_load_report,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_parses_timed_run_one_connection_100_streams() -> None:
    """The 2 s run against nginx: protocol, duration, req/s, request counts, status classes
    and the request-time summary are read exactly."""
    report = parse_h2load(fixture("h2load-nginx-1x100.txt"))
    assert report.protocol == "h2"
    assert not report.alpn_refused
    assert (report.seconds, report.rps) == (2.0, 35129.0)
    assert (report.total, report.started, report.done, report.succeeded) == (
        70258,
        70358,
        70258,
        70258,
    )
    assert (report.failed, report.errored, report.timeout) == (0, 0, 0)
    assert (report.status_2xx, report.status_3xx, report.status_4xx, report.status_5xx) == (
        70258,
        0,
        0,
        0,
    )
    assert report.min_ms == pytest.approx(0.849)
    assert report.max_ms == pytest.approx(30.96)
    assert report.mean_ms == pytest.approx(2.75)
    assert checked(report) is report


def test_parses_ten_connections_and_short_durations() -> None:
    """10 connections x 10 streams, and a run measured in milliseconds ("finished in
    21.28ms") with microsecond request times."""
    ten = parse_h2load(fixture("h2load-nginx-10x10.txt"))
    assert (ten.protocol, ten.done, ten.rps) == ("h2", 54475, 27237.5)
    assert ten.min_ms == pytest.approx(0.412)
    short = parse_h2load(fixture("h2load-nginx-n200.txt"))
    assert short.seconds == pytest.approx(0.02128)
    assert (short.done, short.status_2xx, short.rps) == (200, 200, 9398.94)
    assert (short.min_ms, short.max_ms, short.mean_ms) == pytest.approx((0.262, 0.784, 0.406))


def test_request_log_percentiles() -> None:
    """p50 and p99 come from the per-request log (nearest rank over all 200 requests) and
    lie inside h2load's own min..max of the same run."""
    p50, p99, count = latency_ms(fixture("h2load-nginx-n200.log"))
    micros = sorted(
        int(line.split("\t")[2]) for line in fixture("h2load-nginx-n200.log").split("\n") if line
    )
    assert count == 200 == len(micros)
    assert p50 == micros[99] / 1000
    assert p99 == micros[197] / 1000
    summary = parse_h2load(fixture("h2load-nginx-n200.txt"))
    assert summary.min_ms <= p50 <= p99 <= summary.max_ms


def test_failed_requests_are_left_out_of_percentiles() -> None:
    """Rows with status -1 (the stream failed) do not count as latencies."""
    log = "1\t200\t1000\n2\t-1\t999999\n3\t200\t3000\n4\t503\t2000\n"
    assert latency_ms(log) == (2.0, 3.0, 3)
    assert latency_ms("") == (0.0, 0.0, 0)


def test_common_report_counts() -> None:
    """Completed requests, h2load's req/s and the log percentiles make the common report;
    errored and timed-out requests are socket errors, 4xx/5xx failed responses."""
    report = parse_h2load(fixture("h2load-nginx-n200.txt"))
    common = to_load_report(report, fixture("h2load-nginx-n200.log"))
    assert (common.requests, common.rps, common.socket_errors, common.non_2xx_3xx) == (
        200,
        9398.94,
        0,
        0,
    )
    assert (common.p50_ms, common.p99_ms) == latency_ms(fixture("h2load-nginx-n200.log"))[:2]


def test_server_without_h2_is_refused_not_measured() -> None:
    """Our HTTP/1.1-only Tier-2: no ALPN agreement, nothing done; ``checked`` says so."""
    report = parse_h2load(fixture("h2load-ours-alpn-refused.txt"))
    assert report.alpn_refused
    assert report.protocol == ""
    assert (report.done, report.errored) == (0, 10)
    with pytest.raises(H2loadError, match="did not negotiate h2 with ALPN"):
        checked(report)


def test_other_protocol_or_nothing_done_is_an_error() -> None:
    """A run that negotiated another protocol, or completed no request, is not a result."""
    text = fixture("h2load-nginx-n200.txt")
    with pytest.raises(H2loadError, match=r"negotiated 'http/1\.1', not 'h2'"):
        checked(
            parse_h2load(text.replace("Application protocol: h2", "Application protocol: http/1.1"))
        )
    nothing = text.replace(
        "200 done, 200 succeeded, 0 failed, 0 errored",
        "0 done, 0 succeeded, 200 failed, 200 errored",
    )
    with pytest.raises(H2loadError, match="no request completed over h2: 200 errored"):
        checked(parse_h2load(nothing))


def test_unparseable_output_raises() -> None:
    """Output without the summary lines is an error, not a silent zero."""
    with pytest.raises(H2loadError, match="cannot parse h2load output"):
        parse_h2load("invalid URI: foo\n")


def test_argv_offers_only_h2_and_pins() -> None:
    """h2load offers only h2 in ALPN, runs one thread for whole seconds (at least 1) or a
    request count, connects where it is told and logs when asked."""
    assert h2load_argv(
        "https://tier2.cluster-1.lab:8443/",
        "127.0.0.1:8443",
        clients=1,
        streams=100,
        cpu=0,
        duration=2.6,
        log_file=Path("/w/h2.log"),
    ) == [
        "taskset",
        "-c",
        "0",
        "h2load",
        "--npn-list=h2",
        "-t1",
        "-c1",
        "-m100",
        "-D",
        "3",
        "--connect-to=127.0.0.1:8443",
        "--log-file=/w/h2.log",
        "https://tier2.cluster-1.lab:8443/",
    ]
    counted = h2load_argv(
        "https://x/", "127.0.0.1:1", clients=10, streams=10, cpu=None, requests=20
    )
    assert counted == [
        "h2load",
        "--npn-list=h2",
        "-t1",
        "-c10",
        "-m10",
        "-n",
        "20",
        "--connect-to=127.0.0.1:1",
        "https://x/",
    ]
