"""Benchmark: medians over runs, ratios to nginx and goal verdicts."""

from __future__ import annotations

import pytest

from bench.stats import Ratio, ratios, summarize
from bench.wrk import RunResult, WrkReport


def run(
    rps: float, p50: float, p99: float, cpu_s: float, requests: int, errors: int = 0
) -> RunResult:
    report = WrkReport(requests, 10.0, rps, p50, p99, errors, 0)
    return RunResult(
        report,
        proxy_cpu_s=cpu_s,
        wall_s=10.0,
        load_core_busy=0.9,
        proxy_core_busy=0.8,
        proxy_system_s=cpu_s / 4,
        wrk_cpu_s=1.0,
        backend_cpu_s=0.5,
        machine_busy_cores=2.0,
    )


def test_summary_takes_each_median_separately() -> None:
    """rps, latencies and CPU per request are medians of their own; errors are summed."""
    runs = [
        run(10_000, 3.0, 9.0, 5.0, 100_000),
        run(12_000, 2.0, 7.0, 4.0, 100_000, errors=2),
        run(8_000, 4.0, 8.0, 6.0, 100_000, errors=1),
    ]
    s = summarize("b-ours", runs)
    assert s.rps == 10_000
    assert s.rps_runs == (10_000.0, 12_000.0, 8_000.0)
    assert s.spread_pct == 40.0
    assert (s.p50_ms, s.p99_ms) == (3.0, 8.0)
    assert s.cpu_us_per_request == 50.0
    assert s.system_us_per_request == 12.5
    assert s.proxy_cores == 0.5
    assert s.other_cores == pytest.approx(1.35)
    assert s.errors == 3


def test_summary_of_nothing_is_an_error() -> None:
    """A path without runs cannot be summarised."""
    with pytest.raises(ValueError, match="no runs"):
        summarize("a", [])


def test_ratios_against_nginx_and_goals() -> None:
    """rps ratio is ours/nginx, CPU ratio ours/nginx per request, goal checked on rps."""
    summaries = {
        "b-ours": summarize("b-ours", [run(13_000, 1, 2, 4.0, 100_000)]),
        "b-nginx": summarize("b-nginx", [run(26_000, 1, 2, 2.0, 100_000)]),
        "c-ours-tls": summarize("c-ours-tls", [run(3_900, 1, 2, 9.0, 100_000)]),
        "c-nginx-tls": summarize("c-nginx-tls", [run(10_000, 1, 2, 3.0, 100_000)]),
    }
    got = {r.ours: r for r in ratios(summaries)}
    assert set(got) == {"b-ours", "c-ours-tls"}
    assert got["b-ours"].rps_ratio == 0.5
    assert got["b-ours"].cpu_ratio == 2.0
    assert got["b-ours"].passed
    assert got["c-ours-tls"].rps_ratio == pytest.approx(0.39)
    assert got["c-ours-tls"].cpu_ratio == 3.0
    assert not got["c-ours-tls"].passed


def test_ratio_verdict_at_the_boundary() -> None:
    """Exactly the goal passes; just below fails."""
    assert Ratio("x", "y", 0.4, 0.4, 1.0).passed
    assert not Ratio("x", "y", 0.4, 0.3999, 1.0).passed
