"""The commands ``gateway-lab up`` prints, derived from the topology and Gateway listeners."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from gateway_lab.cli import parser, subcommands
from gateway_lab.commands import admin_commands, curl_commands, dashboard_urls, lab_commands
from gateway_lab.plan import Workdir, lab_plan
from gateway_lab.topology import load_topology

R1 = "--resolve bookinfo.example.com:8080:127.0.0.1"


def test_curl_commands_for_the_lab() -> None:
    """The issue's commands: per cluster, weighted, HTTPS, Tier-2 redirect, /user, /hello."""
    commands = [cmd for _, cmd in curl_commands(load_topology(), Path("/w/certs/ca.crt"))]
    page = "curl -s http://bookinfo.example.com:8080/productpage"
    assert commands == [
        f"{page} {R1} -H 'X-CLUSTER-SELECTOR: cluster-1'",
        f"{page} {R1} -H 'X-CLUSTER-SELECTOR: cluster-2'",
        f"{page} {R1} -H 'X-CLUSTER-SELECTOR: cluster-3'",
        f"{page} {R1}",
        "curl -s https://bookinfo.example.com:8443/productpage "
        "--resolve bookinfo.example.com:8443:127.0.0.1 --cacert /w/certs/ca.crt "
        "-H 'X-CLUSTER-SELECTOR: cluster-2'",
        "curl -si http://bookinfo.example.com:8080/productpage "
        "--resolve bookinfo.example.com:8080:127.0.1.1",
        f"curl -s http://bookinfo.example.com:8080/user {R1}",
        f"curl -s http://bookinfo.example.com:8080/hello {R1} -H 'X-CLUSTER-SELECTOR: cluster-2'",
    ]


def test_ca_path_with_spaces_is_quoted() -> None:
    """A workdir with a space still yields a command the shell runs as printed."""
    commands = [cmd for _, cmd in curl_commands(load_topology(), Path("/my lab/ca.crt"))]
    assert any("--cacert '/my lab/ca.crt'" in cmd for cmd in commands)


def test_admin_commands_point_at_the_admin_addresses() -> None:
    """Tier-1's /clusters and metrics, cluster-1's config_dump, and a live explain."""
    commands = dict(admin_commands(load_topology()))
    assert commands["Tier-1 live hosts, priorities, health"] == (
        "curl -s http://127.0.0.1:15000/clusters"
    )
    assert commands["tier2-cluster-1 active config and version"] == (
        "curl -s http://127.0.1.1:15000/config_dump"
    )
    explain = commands["how Tier-1 routes a request"]
    assert explain.endswith(
        "explain --admin-address 127.0.0.1:15000 -H 'X-CLUSTER-SELECTOR: cluster-3' "
        "http://bookinfo.example.com:8080/productpage"
    )


def test_dashboard_urls_are_each_gateways_admin_root() -> None:
    """Tier-1's dashboard first, then each cluster's Tier-2, at their admin addresses."""
    assert dashboard_urls(load_topology()) == [
        ("tier1-gateway", "http://127.0.0.1:15000/"),
        ("tier2-cluster-1", "http://127.0.1.1:15000/"),
        ("tier2-cluster-2", "http://127.0.2.1:15000/"),
        ("tier2-cluster-3", "http://127.0.3.1:15000/"),
    ]


def test_lab_commands_cover_every_subcommand_as_runnable_lines() -> None:
    """Every subcommand but ``up`` is printed, as a line the CLI's own parser accepts; ``kill``
    and ``start`` name a real lab process, ``scenario`` a real scenario."""
    topology = load_topology()
    processes = {spec.name for _, spec in lab_plan(topology, Workdir(Path("/w")))}
    printed = []
    for what, command in lab_commands(topology):
        program, *args = shlex.split(command)
        assert Path(program).name == "gateway-lab"
        parsed = parser().parse_args(args)
        assert what.startswith(f"{parsed.command}: ")
        if parsed.command in ("kill", "start"):
            assert parsed.name in processes
        printed.append(parsed.command)
    assert printed == [name for name in subcommands(parser()) if name != "up"]
    assert {"status", "kill", "start", "scenario", "down"} <= set(printed)


def test_lab_commands_name_a_non_default_topology(tmp_path: Path) -> None:
    """A lab started with --topology prints commands that reach that lab's control API."""
    default = load_topology()
    data = yaml.safe_load(default.path.read_text(encoding="utf-8"))
    for node in [data["tier1"], *data["clusters"].values()]:
        node["config"] = [str(default.root / folder) for folder in node["config"]]
    moved = tmp_path / "my topology.yaml"
    moved.write_text(yaml.safe_dump(data), encoding="utf-8")
    for _, command in lab_commands(load_topology(moved)):
        args = parser().parse_args(shlex.split(command)[1:])
        assert args.topology == moved
