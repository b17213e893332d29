"""Control path (lab): what ``gateway-lab up`` runs — the work directory and every child's command.

Children are started as ``sys.executable -m <module>`` so the lab works from a virtualenv
without PATH changes. The order of ``lab_plan`` is the start order in phases: DNS, the pod
groups, the Tier-2 gateways, Tier-1 (each phase needs the previous one to answer).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gateway_lab.demo_pod import GRPC_ROLE
from gateway_lab.processes import ProcessSpec, all_probes, dns_probe, grpc_health_probe, http_probe
from gateway_lab.topology import GatewayNode, PodInstance, Topology

PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
PHASES = ("dns", "pods", "tier2", "tier1")


@dataclass(frozen=True, slots=True)
class Workdir:
    """``WORKDIR/{certs,logs,overrides/<cluster>,dns-zone.yaml}``."""

    root: Path

    @property
    def certs(self) -> Path:
        return self.root / "certs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def zone(self) -> Path:
        return self.root / "dns-zone.yaml"

    def overrides(self, name: str) -> Path:
        return self.root / "overrides" / name

    def prepare(self, topology: Topology) -> None:
        """Create the folders, empty the previous run's logs, write the DNS zone."""
        self.logs.mkdir(parents=True, exist_ok=True)
        for name in ["tier1", *(c.name for c in topology.clusters)]:
            self.overrides(name).mkdir(parents=True, exist_ok=True)
        for log in self.logs.glob("*.log"):
            log.write_bytes(b"")
        self.zone.write_text(yaml.safe_dump(topology.dns_records(), sort_keys=True))


def lab_plan(topology: Topology, workdir: Workdir) -> list[tuple[str, ProcessSpec]]:
    """``(phase, spec)`` for every child, in start order."""
    env = _child_env()
    plan = [("dns", _dns_spec(topology, workdir, env))]
    for c in topology.clusters:
        pods = topology.pod_instances(c.name)
        roles = ", ".join(sorted({p.role for p in pods}))
        spec = ProcessSpec(
            name=f"pods-{c.name}",
            kind="pods",
            argv=_module("gateway_lab.pods", "--cluster", c.name, "--topology", str(topology.path)),
            log=workdir.logs / f"pods-{c.name}.log",
            probe=all_probes(
                http_probe(*(f"http://{p.host}:{p.port}/healthz" for p in pods if not _grpc(p))),
                grpc_health_probe(*(f"{p.host}:{p.port}" for p in pods if _grpc(p))),
            ),
            summary=f"{len(pods)} pods ({roles})",
            env=env,
        )
        plan.append(("pods", spec))
    for gw in topology.gateways:
        plan.append((gw.tier, gateway_spec(topology, workdir, gw, env)))
    return plan


def _dns_spec(topology: Topology, workdir: Workdir, env: dict[str, str]) -> ProcessSpec:
    host, port = topology.dns_listen
    records = topology.dns_records()
    return ProcessSpec(
        name="dns",
        kind="dns",
        argv=_module(
            "gateway_lab.dns_server", "--listen", f"{host}:{port}", "--zone", str(workdir.zone)
        ),
        log=workdir.logs / "dns.log",
        probe=dns_probe(topology.dns_listen, next(iter(records), "lab")),
        summary=f"{host}:{port} ({len(records)} names)",
        env=env,
    )


def gateway_spec(
    topology: Topology, workdir: Workdir, gw: GatewayNode, env: dict[str, str]
) -> ProcessSpec:
    override = workdir.overrides(gw.cluster or "tier1")
    argv = [
        *_module(f"{gw.tier}_gateway", "run"),
        # Overrides come first: their VirtualService rules precede the lab's own for the same
        # host (rules of same-host VirtualServices are concatenated in load order).
        *("--config", str(override), *(str(f) for f in gw.config)),
        *("--admin-address", f"{gw.admin[0]}:{gw.admin[1]}"),
        # Every lab address is a loopback one: POST /reload and /drain work without a token.
        "--admin-allow-unauthenticated-loopback",
        *("--bind-address", gw.address),
        *("--cert-dir", str(workdir.certs)),
        *("--dns-server", f"{topology.dns_listen[0]}:{topology.dns_listen[1]}"),
        *("--access-log", str(workdir.logs / f"{gw.name}.access.log")),
        *("--workload-name", gw.name),  # source_workload in Istio's metrics
    ]
    if gw.cluster:
        argv += ["--cluster-name", gw.cluster]
    if gw.locality:
        argv += ["--locality", gw.locality]
    ports = " ".join(f":{p}" for p, _ in gw.listener_ports())
    return ProcessSpec(
        name=gw.name,
        kind="gateway",
        argv=tuple(argv),
        log=workdir.logs / f"{gw.name}.log",
        probe=http_probe(f"http://{gw.admin[0]}:{gw.admin[1]}/ready"),
        summary=f"{gw.address} {ports}, admin {gw.admin[0]}:{gw.admin[1]}",
        env=env,
    )


def _grpc(pod: PodInstance) -> bool:
    return pod.role == GRPC_ROLE


def _module(name: str, *args: str) -> tuple[str, ...]:
    return (sys.executable, "-m", name, *args)


def _child_env() -> dict[str, str]:
    # Children find this source tree even when the lab runs from it without an install.
    paths = [PACKAGE_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}
