"""canary and sticky helpers: the override they write, how replies are read and judged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import yaml

from gateway_core.pipeline import build_snapshot
from gateway_core.snapshot import NodeInfo
from gateway_lab.scenario_kit import Reply
from gateway_lab.scenario_traffic import (
    canary_virtual_service,
    hello_version,
    session_cookie,
    split_ok,
    write_override,
)

LAB = Path(__file__).resolve().parents[2] / "deploy" / "lab"


def test_canary_override_is_valid_next_to_the_lab_config(tmp_path: Path) -> None:
    """The written VirtualService validates and compiles with cluster-2's configuration."""
    override = tmp_path / "canary.yaml"
    write_override(override, canary_virtual_service(90, 10))
    result = build_snapshot(
        [LAB / "tier2", LAB / "cluster-2", override], NodeInfo(cluster_name="cluster-2")
    )
    assert result.ok, [str(d) for d in result.diagnostics.errors]
    doc = yaml.safe_load(override.read_text())
    route = doc["spec"]["http"][0]
    assert route["match"] == [{"uri": {"exact": "/hello"}}]
    assert [(d["destination"]["subset"], d["weight"]) for d in route["route"]] == [
        ("v1", 90),
        ("v2", 10),
    ]
    assert doc["spec"]["gateways"] == ["bookinfo/bookinfo-gateway"]


def test_write_override_none_removes_the_file(tmp_path: Path) -> None:
    """Removing an override deletes it and leaves no temp file behind."""
    override = tmp_path / "canary.yaml"
    write_override(override, canary_virtual_service(0, 100))
    write_override(override, None)
    assert list(tmp_path.iterdir()) == []


def test_hello_version_reads_helloworld_replies() -> None:
    """'Hello version: v2, instance: x' is v2; failures are named by status."""
    assert (
        hello_version(Reply(200, {}, "Hello version: v2, instance: helloworld-v2-1\n", 0)) == "v2"
    )
    assert hello_version(Reply(503, {}, "no healthy upstream", 0)) == "HTTP 503"
    assert hello_version(Reply(0, {}, "", 0, error="timeout")) == "error"


def test_split_ok_is_exact_at_the_ends_and_tolerant_between() -> None:
    """0/100 needs every reply on v2; 90/10 accepts ±7 points on each version."""
    assert split_ok(0, 100, Counter(v2=200), 200)
    assert not split_ok(0, 100, Counter(v1=1, v2=199), 200)
    assert split_ok(90, 10, Counter(v1=166, v2=34), 200)
    assert not split_ok(90, 10, Counter(v1=165, v2=35), 200)


def test_session_cookie_picks_the_sticky_cookie_value() -> None:
    """The user-session value is read from Set-Cookie, quotes kept as sent."""
    reply = Reply(
        200,
        {},
        "{}",
        0,
        set_cookies=("other=1; Path=/", 'user-session="5e8b6d2bb107037c"; Max-Age=3600; Path=/'),
    )
    assert session_cookie(reply) == '"5e8b6d2bb107037c"'
    assert session_cookie(Reply(200, {}, "{}", 0)) is None
