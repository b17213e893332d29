"""CLI contract of ``tier1-gateway``: same commands, Tier-1 role defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tier1(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m tier1_gateway ARGS`` from the repository root, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tier1_gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def explain_lab(*args: str) -> subprocess.CompletedProcess[str]:
    """``explain`` over the lab's Tier-1 config, as cluster-1's locality sees it."""
    return tier1(
        "explain", "--config", "deploy/lab/tier1", "--locality", "us-west1/us-west1-a", *args
    )


def test_module_entry_point_and_help() -> None:
    """``python -m tier1_gateway --help`` lists the subcommands."""
    result = tier1("--help")
    assert result.returncode == 0
    assert "{run,validate,explain}" in result.stdout


def test_explain_the_lab_tier1_with_a_cluster_selector() -> None:
    """The lab's Tier-1 sends X-CLUSTER-SELECTOR: cluster-2 to subset cluster-2 of tier2.lab."""
    result = explain_lab(
        "-H", "X-CLUSTER-SELECTOR: cluster-2", "http://bookinfo.example.com:8080/productpage"
    )
    assert result.returncode == 0, result.stderr
    assert "subset=cluster-2 weight=100 share=100.0%" in result.stdout
    assert "endpoint tier2.cluster-2.lab:8443" in result.stdout
    assert "client protocol: HTTP/1.1" in result.stdout
    # bookinfo reaches Tier-2 over HTTP/1.1 with TLS (gRPC over HTTP/2: the next test).
    assert "upstream protocol: HTTP/1.1 over TLS" in result.stdout


def test_explain_names_the_protocol_of_each_hop() -> None:
    """--http2: the client hop is HTTP/2 (h2c on the plaintext port, ALPN h2 over TLS); gRPC
    goes to Tier-2 over HTTP/2 because its ServiceEntry port says GRPC."""
    plain = explain_lab(
        "--http2",
        "-H",
        "X-CLUSTER-SELECTOR: cluster-3",
        "http://grpc.example.com:8080/demo.v1.Demo/Hello",
    )
    assert plain.returncode == 0, plain.stderr
    assert "client protocol: HTTP/2 (h2c, prior knowledge)" in plain.stdout
    assert "upstream protocol: HTTP/2 over TLS (ALPN h2)" in plain.stdout
    tls = explain_lab("--http2", "https://bookinfo.example.com:8443/productpage")
    assert "client protocol: HTTP/2 (TLS, ALPN h2)" in tls.stdout


def test_role_defaults_differ_between_tiers() -> None:
    """Tier-1 spills over between weighted clusters and trusts no proxy; Tier-2 the reverse."""
    from tier1_gateway.cli import ROLE as T1
    from tier2_gateway.cli import ROLE as T2

    assert (T1.spillover, T1.xff_trusted_hops) == (True, 0)
    assert (T2.spillover, T2.xff_trusted_hops) == (False, 1)


def test_explain_prints_priority_levels_with_their_loads() -> None:
    """For the locality-failover route, explain shows P0/P1/P2 and Envoy's loads (all healthy)."""
    result = explain_lab("http://bookinfo.example.com:8080/user")
    assert result.returncode == 0, result.stderr
    assert "priorities (all healthy): P0 100% (1 endpoints), P1 0% (1 endpoints), P2 0%" in (
        result.stdout
    )
