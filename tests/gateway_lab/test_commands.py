"""The commands ``gateway-lab up`` prints, derived from the topology and Gateway listeners."""

from __future__ import annotations

from pathlib import Path

from gateway_lab.commands import admin_commands, curl_commands
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
