"""Benchmark: markdown tables, goal lines and the JSON document."""

from __future__ import annotations

import json

from bench import report
from bench.pyspy import HotSpot, Profile
from bench.stats import RPS_PER_CORE, Ratio, summarize
from bench.stream import Transfer
from bench.wrk import RunResult, WrkReport

MB = 1000 * 1000
MIB = 1024 * 1024


def one_run(rps: float, rss: int = 0) -> RunResult:
    report = WrkReport(int(rps * 10), 10.0, rps, 1.5, 4.25, 0, 0)
    return RunResult(report, 4.0, 10.0, 1.0, 0.4, proxy_system_s=1.0, proxy_rss_peak=rss)


def test_path_table_rows() -> None:
    """Direct paths have no proxy CPU or RSS; a proxied path shows µs/req, its kernel part,
    cores and the highest RSS of its runs."""
    table = report.path_table(
        [
            summarize("a", [one_run(50_000)]),
            summarize("b-ours", [one_run(10_000, 30 * MIB), one_run(10_000, 31 * MIB)]),
            summarize("grpc-direct", [one_run(5_000)]),
        ],
        {"a": "(a) direct", "b-ours": "(b) ours"},
    )
    lines = table.splitlines()
    assert lines[0].startswith("| path | rps (median) |")
    assert lines[0].endswith("| errors | proxy RSS MiB |")
    assert lines[2] == (
        "| a: (a) direct | 50,000 | 0.0 | 1.50 | 4.25 | - | - | - | 1.00 | 0.00 | 0 | - |"
    )
    assert lines[3] == (
        "| b-ours: (b) ours | 10,000 | 0.0 | 1.50 | 4.25 | 40.0 | 10.0 | 0.40 | 1.00 | 0.00 "
        "| 0 | 31.0 |"
    )
    assert lines[4].startswith("| grpc-direct: grpc-direct | 5,000 |")
    assert lines[4].endswith("| - | - | - | 1.00 | 0.00 | 0 | - |")


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
    assert table[0] == (
        "| ours vs nginx | rps ours/nginx | CPU per request ours/nginx "
        "| rps per core ours/nginx | goal | result |"
    )
    assert table[2] == "| b-ours / b-nginx | 0.62x | 1.80x | 0.56x | rps ≥ 0.5x | PASS |"
    assert table[3].endswith("| FAIL |")


def test_h2_goal_is_on_rps_per_core_and_grpc_is_reported_as_measured() -> None:
    """The HTTP/2 goal is judged on rps per core (the inverse CPU ratio), not on rps; gRPC
    gets no verdict."""
    h2 = Ratio("h2-ours-1x100", "h2-nginx-1x100", 0.35, 0.30, 2.5, RPS_PER_CORE)
    h2_low = Ratio("h2-ours-10x10", "h2-nginx-10x10", 0.35, 0.60, 3.0, RPS_PER_CORE)
    grpc = Ratio("grpc-ours", "grpc-nginx", None, 0.9, 2.0)
    assert h2.passed is True and h2_low.passed is False and grpc.passed is None
    lines = report.goal_lines([h2, h2_low, grpc])
    assert lines[0] == (
        "PASS: h2-ours-1x100 reaches 0.40x nginx rps per core (h2-nginx-1x100); "
        "goal: h2 ≥ 0.35x nginx rps per core. rps is 0.30x nginx's, CPU per request 2.50x."
    )
    assert lines[1].startswith("FAIL: h2-ours-10x10 reaches 0.33x nginx rps per core")
    assert lines[2] == (
        "MEASURED: grpc-ours reaches 0.90x nginx rps (grpc-nginx) and 0.50x its rps per "
        "core; no goal, reported as measured. CPU per request is 2.00x nginx's."
    )
    table = report.ratio_table([h2, grpc]).splitlines()
    assert table[2] == (
        "| h2-ours-1x100 / h2-nginx-1x100 | 0.30x | 2.50x | 0.40x | rps per core ≥ 0.35x | PASS |"
    )
    assert table[3] == (
        "| grpc-ours / grpc-nginx | 0.90x | 2.00x | 0.50x | none: as measured | measured |"
    )


def test_unavailable_paths_and_their_goals_are_named() -> None:
    """A path that could not be measured is listed with its reason, and so is every goal
    that therefore was not evaluated."""
    lines = report.unavailable_lines(
        {"h2-ours-1x100": "the server did not negotiate h2"}, {"h2-ours-1x100": "h2 Tier-2"}
    )
    assert lines == [
        "NOT MEASURED: h2-ours-1x100 (h2 Tier-2): the server did not negotiate h2",
        "NOT MEASURED: h2-ours-1x100 / h2-nginx-1x100 (goal: rps per core ≥ 0.35x): "
        "h2-ours-1x100 could not be measured",
    ]


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
        {"grpc-ours": "first call failed"},
    )
    back = json.loads(json.dumps(doc))
    assert back["unavailable"] == {"grpc-ours": "first call failed"}
    assert back["ratios"][0]["goal_metric"] == "rps"
    assert back["ratios"][0]["rps_per_core_ratio"] == 0.5
    assert back["paths"]["b-ours"]["rps"] == 10_000
    assert back["paths"]["b-ours"]["proxy_cpu_us_per_request"] == 40.0
    assert back["paths"]["b-ours"]["proxy_kernel_us_per_request"] == 10.0
    assert back["ratios"][0]["passed"] is True
    assert back["rss"][0]["growth_bytes"] == 10
    assert back["rss"][0]["passed"] is True
    assert back["profile"]["self"] == [["f (m.py)", 60.0]]
    assert report.profile_text(profile, "b-ours").splitlines()[2] == "   60.0%  f (m.py)"
