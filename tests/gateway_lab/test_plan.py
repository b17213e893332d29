"""What ``gateway-lab up`` runs: phases, each child's command line, and the work directory."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from gateway_lab.plan import Workdir, lab_plan
from gateway_lab.topology import load_topology

LAB = Path(__file__).resolve().parents[2] / "deploy" / "lab"


def test_plan_starts_dns_pods_tier2_then_tier1() -> None:
    """Start order in phases, one pod group per cluster."""
    plan = lab_plan(load_topology(), Workdir(Path("/w")))
    assert [(phase, spec.name) for phase, spec in plan] == [
        ("dns", "dns"),
        ("pods", "pods-cluster-1"),
        ("pods", "pods-cluster-2"),
        ("pods", "pods-cluster-3"),
        ("tier2", "tier2-cluster-1"),
        ("tier2", "tier2-cluster-2"),
        ("tier2", "tier2-cluster-3"),
        ("tier1", "tier1-gateway"),
    ]


def test_tier2_command_line() -> None:
    """cluster-1's Tier-2: its override folder first (its rules win), then its folders."""
    specs = {spec.name: spec for _, spec in lab_plan(load_topology(), Workdir(Path("/w")))}
    spec = specs["tier2-cluster-1"]
    assert spec.argv == (
        sys.executable, "-m", "tier2_gateway", "run",
        "--config", "/w/overrides/cluster-1", str(LAB / "tier2"), str(LAB / "cluster-1"),
        "--admin-address", "127.0.1.1:15000",
        "--admin-allow-unauthenticated-loopback",
        "--bind-address", "127.0.1.1",
        "--cert-dir", "/w/certs",
        "--dns-server", "127.0.0.1:15353",
        "--access-log", "/w/logs/tier2-cluster-1.access.log",
        "--workload-name", "tier2-cluster-1",
        "--cluster-name", "cluster-1",
        "--locality", "us-west1/us-west1-a",
    )  # fmt: skip
    assert spec.log == Path("/w/logs/tier2-cluster-1.log")
    assert spec.summary == "127.0.1.1 :8080 :8443, admin 127.0.1.1:15000"
    tier1 = specs["tier1-gateway"].argv
    assert tier1[2] == "tier1_gateway" and "--cluster-name" not in tier1
    assert "--admin-allow-unauthenticated-loopback" in tier1  # the lab's POST /reload works
    assert specs["pods-cluster-2"].argv[2:5] == ("gateway_lab.pods", "--cluster", "cluster-2")


def test_workdir_prepare_makes_folders_zone_and_empties_logs(tmp_path: Path) -> None:
    """Override folders per cluster and Tier-1, the DNS zone file, and fresh logs."""
    workdir = Workdir(tmp_path)
    workdir.logs.mkdir()
    (workdir.logs / "tier1-gateway.log").write_text("old run\n")
    topology = load_topology()
    workdir.prepare(topology)
    assert sorted(p.name for p in (tmp_path / "overrides").iterdir()) == [
        "cluster-1",
        "cluster-2",
        "cluster-3",
        "tier1",
    ]
    assert (workdir.logs / "tier1-gateway.log").read_text() == ""
    assert yaml.safe_load(workdir.zone.read_text()) == topology.dns_records()
