"""Control path (lab): the curl, admin and lab commands and the dashboard URLs `gateway-lab up`
prints, as runnable.

Hosts, ports and addresses come from the topology and the Gateway listeners, so the commands
follow any change to deploy/lab. The end-to-end test runs exactly these lines with real curl.
The lab commands come from the ``gateway-lab`` argument parser itself: every subcommand but
``up`` (the one running) is printed, so a new subcommand cannot be left out.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from gateway_lab.cli import parser, subcommands
from gateway_lab.topology import HOSTNAME, ClusterSpec, Topology, default_path


def curl_commands(topo: Topology, ca_file: Path) -> list[tuple[str, str]]:
    """``(what it shows, command)`` pairs the lab prints; each runs as printed."""
    t1 = topo.tier1
    http = t1.port_for("HTTP") or 80
    https = t1.port_for("HTTPS")
    resolve = f"--resolve {HOSTNAME}:{http}:{t1.address}"
    base = f"http://{HOSTNAME}:{http}"
    out: list[tuple[str, str]] = []
    for c in topo.clusters:
        header = shlex.quote(f"X-CLUSTER-SELECTOR: {c.name}")
        out.append(
            (f"productpage served by {c.name}", f"curl -s {base}/productpage {resolve} -H {header}")
        )
    out.append(("productpage, cluster chosen by weight", f"curl -s {base}/productpage {resolve}"))
    if https is not None:
        second = topo.clusters[min(1, len(topo.clusters) - 1)].name
        out.append(
            (
                f"HTTPS through Tier-1 (lab CA), {second}",
                f"curl -s https://{HOSTNAME}:{https}/productpage "
                f"--resolve {HOSTNAME}:{https}:{t1.address} --cacert {shlex.quote(str(ca_file))} "
                f"-H {shlex.quote(f'X-CLUSTER-SELECTOR: {second}')}",
            )
        )
    first = topo.clusters[0].gateway
    t2_http = first.port_for("HTTP") or 80
    out.append(
        (
            f"HTTP straight at {first.name}: 301 to HTTPS",
            f"curl -si http://{HOSTNAME}:{t2_http}/productpage "
            f"--resolve {HOSTNAME}:{t2_http}:{first.address}",
        )
    )
    out.append(("/user from the nearest healthy cluster", f"curl -s {base}/user {resolve}"))
    hello = next((c.name for c in topo.clusters if _serves(c, "helloworld")), None)
    if hello is not None:
        header = shlex.quote(f"X-CLUSTER-SELECTOR: {hello}")
        out.append((f"helloworld in {hello}", f"curl -s {base}/hello {resolve} -H {header}"))
    return out


def admin_commands(topo: Topology) -> list[tuple[str, str]]:
    t1 = topo.tier1
    admin = f"http://{t1.admin[0]}:{t1.admin[1]}"
    first = topo.clusters[0].gateway
    t2 = f"http://{first.admin[0]}:{first.admin[1]}"
    http = t1.port_for("HTTP") or 80
    url = f"http://{HOSTNAME}:{http}/productpage"
    return [
        ("Tier-1 live hosts, priorities, health", f"curl -s {admin}/clusters"),
        (f"{first.name} active config and version", f"curl -s {t2}/config_dump"),
        ("metrics", f"curl -s {admin}/stats/prometheus"),
        (
            "how Tier-1 routes a request",
            f"{_tool('tier1-gateway', 'tier1_gateway')} explain "
            f"--admin-address {t1.admin[0]}:{t1.admin[1]} "
            f"-H 'X-CLUSTER-SELECTOR: {topo.clusters[-1].name}' {url}",
        ),
    ]


def dashboard_urls(topo: Topology) -> list[tuple[str, str]]:
    """``(gateway, URL)`` of each gateway's live dashboard (its admin port's ``/``), Tier-1
    first: the split between clusters there, each cluster's subsets on its Tier-2."""
    return [
        (gw.name, f"http://{gw.admin[0]}:{gw.admin[1]}/")
        for gw in (topo.tier1, *(c.gateway for c in topo.clusters))
    ]


def lab_commands(topo: Topology) -> list[tuple[str, str]]:
    """``(what it does, command)`` for every ``gateway-lab`` subcommand but ``up``.

    A positional argument with choices gets its first choice (the others are named in the
    description); one without choices is a lab process name (``kill``/``start``), here the first
    cluster's Tier-2 gateway. Options are named in the description, with their choices.
    """
    program = _tool("gateway-lab", "gateway_lab.cli")
    if topo.path != default_path().resolve():
        program += f" --topology {shlex.quote(str(topo.path))}"
    out: list[tuple[str, str]] = []
    for name, (sub, help_text) in subcommands(parser()).items():
        if name == "up":
            continue
        words, notes = [name], []
        nested = next((a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None)
        if nested is not None:  # ``grpc call|health``: the first one, aimed at Tier-1
            first = next(iter(nested.choices))
            words += [first, "--authority", "grpc.example.com", f"{topo.tier1.address}:8080"]
            notes.append(f"{nested.dest}: {', '.join(nested.choices)}")
            out.append((f"{name}: {help_text}; " + "; ".join(notes), " ".join([program, *words])))
            continue
        for action in sub._actions:
            if action.option_strings and action.dest != "help":
                flag = action.option_strings[-1]
                values = "|".join(action.choices) if action.choices else (action.metavar or "N")
                notes.append(f"{flag} {values} (default {action.default})")
            elif not action.option_strings and action.choices:
                choices = [str(c) for c in action.choices]
                words.append(choices[0])
                notes.append(f"{action.dest}: {', '.join(choices)}")
            elif not action.option_strings:
                words.append(f"tier2-{topo.clusters[0].name}")
        what = f"{name}: {help_text}" + "".join(f"; {note}" for note in notes)
        out.append((what, " ".join([program, *words])))
    return out


def _serves(cluster: ClusterSpec, role: str) -> bool:
    return any(p.role == role for p in cluster.pods)


def _tool(script: str, module: str) -> str:
    """How to run a console script of this install, whether or not its venv is on PATH."""
    beside = Path(sys.executable).parent / script
    if not beside.is_file():
        return f"{shlex.quote(sys.executable)} -m {module}"
    try:
        return str(beside.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(beside))
