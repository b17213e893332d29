"""Scenario helpers: tables, reply parsing and the priority summary line."""

from __future__ import annotations

from gateway_lab.scenario_kit import Reply, format_table, percent, priority_summary, within


def test_format_table_aligns_columns() -> None:
    """First column left-aligned, the others right-aligned, a dash rule under the header."""
    text = format_table(["split", "v1", "result"], [["90/10", 180, "ok"], ["0/100", 0, "OFF"]])
    assert text.splitlines() == [
        "split   v1  result",
        "-----  ---  ------",
        "90/10  180      ok",
        "0/100    0     OFF",
    ]


def test_reply_cluster_comes_from_the_json_body_or_the_demo_header() -> None:
    """Demo pods name their cluster in JSON; other bodies fall back to x-demo-cluster."""
    js = Reply(200, {}, '{"cluster": "cluster-2", "pod": "user-v1-0"}', 0.0)
    html = Reply(200, {"x-demo-cluster": "cluster-3"}, "<html>", 0.0)
    failed = Reply(0, {}, "", 0.0, error="ClientConnectorError")
    assert (js.cluster, html.cluster, failed.cluster) == ("cluster-2", "cluster-3", "?")
    assert (js.ok, failed.ok, Reply(503, {}, "", 0.0).ok) == (True, False, False)


def test_percent_and_tolerance() -> None:
    """Shares in percent (0 for no requests) and an inclusive tolerance band."""
    assert (percent(45, 200), percent(0, 0)) == (22.5, 0.0)
    assert within(57.0, 50, 7.0) and not within(57.5, 50, 7.0)


def test_priority_summary_reads_admin_clusters() -> None:
    """Levels from /clusters as 'P0 5/14 load 50 | P1 4/4 load 50', with PANIC when set."""
    state = {
        "priorities": [
            {"priority": 0, "healthy": 5, "hosts": 14, "load": 50, "panic": False},
            {"priority": 1, "healthy": 4, "hosts": 4, "load": 50, "panic": True},
        ]
    }
    assert priority_summary(state) == "P0 5/14 load 50 | P1 4/4 load 50 PANIC"
    assert priority_summary({}) == "(no hosts)"
