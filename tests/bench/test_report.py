"""Benchmark: markdown tables, goal lines and the JSON document."""

from __future__ import annotations

import json

from bench import report
from bench.pyspy import HotSpot, Profile
from bench.stats import Ratio, summarize
from bench.stream import Transfer
from bench.wrk import RunResult, WrkReport

MB = 1000 * 1000


def one_run(rps: float) -> RunResult:
    report = WrkReport(int(rps * 10), 10.0, rps, 1.5, 4.25, 0, 0)
    return RunResult(report, 4.0, 10.0, 1.0, 0.4, proxy_system_s=1.0)


def test_path_table_rows() -> None:
    """Direct path has no proxy CPU; a proxied path shows µs/req, its kernel part, cores."""
    table = report.path_table(
        [summarize("a", [one_run(50_000)]), summarize("b-ours", [one_run(10_000)])],
        {"a": "(a) direct", "b-ours": "(b) ours"},
    )
    lines = table.splitlines()
    assert lines[0].startswith("| path | rps (median) |")
    assert (
        lines[2] == "| a: (a) direct | 50,000 | 0.0 | 1.50 | 4.25 | - | - | - | 1.00 | 0.00 | 0 |"
    )
    assert lines[3] == (
        "| b-ours: (b) ours | 10,000 | 0.0 | 1.50 | 4.25 | 40.0 | 10.0 | 0.40 | 1.00 | 0.00 | 0 |"
    )


def test_goal_lines_and_ratio_table() -> None:
    """Each comparison prints PASS or FAIL with both ratios."""
    ratios = [
        Ratio("b-ours", "b-nginx", 0.5, 0.62, 1.8),
        Ratio("c-ours-tls", "c-nginx-tls", 0.4, 0.31, 3.0),
    ]
    lines = report.goal_lines(ratios)
    assert lines[0] == (
        "PASS: b-ours reaches 0.62x nginx rps (b-nginx); goal ≥ 0.5x. "
        "CPU per request is 1.80x nginx's."
    )
    assert lines[1].startswith("FAIL: c-ours-tls reaches 0.31x")
    table = report.ratio_table(ratios).splitlines()
    assert table[2] == "| b-ours / b-nginx | 0.62x | 1.80x | ≥ 0.5x | PASS |"
    assert table[3].endswith("| FAIL |")


def test_rss_table_verdicts() -> None:
    """Growth under 20 MB with an intact body passes; more growth or a broken body fails."""
    good = Transfer("upload", "chunked", 100 * MB, 2.0, 60 * 2**20, 61 * 2**20, True)
    big = Transfer("download", "content-length", 100 * MB, 2.0, 0, 25 * MB, True)
    broken = Transfer("download", "chunked", 100 * MB, 1.0, 0, 0, False, "ValueError: x")
    rows = report.rss_table([good, big, broken]).splitlines()
    assert rows[2].endswith("| 1.0 | yes | PASS |")
    assert "| 50 |" in rows[2]
    assert rows[3].endswith("| 25.0 | yes | FAIL |")
    assert rows[4].endswith("| NO (ValueError: x) | FAIL |")


def test_document_is_json_serialisable() -> None:
    """The results document round-trips through JSON with the figures intact."""
    summary = summarize("b-ours", [one_run(10_000)])
    profile = Profile(10, (HotSpot("f (m.py)", 60.0, 70.0),), (HotSpot("g (m.py)", 0.0, 90.0),))
    transfer = Transfer("upload", "chunked", MB, 0.5, 10, 20, True)
    doc = report.document(
        {"date_utc": "x"},
        [summary],
        {"b-ours": [{"rps": 1.0}]},
        [Ratio("b-ours", "b-nginx", 0.5, 0.6, 2.0)],
        [transfer],
        profile,
    )
    back = json.loads(json.dumps(doc))
    assert back["paths"]["b-ours"]["rps"] == 10_000
    assert back["paths"]["b-ours"]["proxy_cpu_us_per_request"] == 40.0
    assert back["paths"]["b-ours"]["proxy_kernel_us_per_request"] == 10.0
    assert back["ratios"][0]["passed"] is True
    assert back["rss"][0]["growth_bytes"] == 10
    assert back["rss"][0]["passed"] is True
    assert back["profile"]["self"] == [["f (m.py)", 60.0]]
    assert report.profile_text(profile, "b-ours").splitlines()[2] == "   60.0%  f (m.py)"
