"""Control path (lab): ``deploy/lab/topology.yaml`` — which processes the embedded lab runs where.

The topology names the DNS server's address, the Tier-1 gateway, and per cluster its Tier-2
gateway and demo pods (with the DNS names the Istio ServiceEntries use). Everything the lab
derives from it lives here: the DNS zone, each pod's instances and backend URLs, the sockets
every process will bind (for the port check before anything starts) and the curl commands the
lab prints. Listener ports come from the Gateway resources the gateway will load, so the lab
never disagrees with the Istio YAML about them.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway_core.config.loader import load_resources
from gateway_lab.demo_pod import POD_ROLES

DEFAULT_CONTROL = ("127.0.0.1", 15999)
HOSTNAME = "bookinfo.example.com"
_BACKEND_ROLES = ("details", "reviews", "ratings")


class TopologyError(ValueError):
    """The topology file is missing, malformed or inconsistent; the message says where."""


@dataclass(frozen=True, slots=True)
class PodSpec:
    """One ``pods`` entry: a service version served by one pod per address."""

    service: str
    role: str
    version: str
    dns: str
    addresses: tuple[str, ...]
    port: int
    backends: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PodInstance:
    """One demo pod process-to-be: its name, socket and the URLs of its bookinfo backends."""

    name: str
    service: str
    role: str
    version: str
    cluster: str
    locality: str
    host: str
    port: int
    backend_urls: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class GatewayNode:
    """A gateway process: ``tier1-gateway`` or ``tier2-<cluster>``."""

    name: str
    tier: str
    cluster: str
    address: str
    admin: tuple[str, int]
    locality: str
    dns: str | None
    config: tuple[Path, ...]

    def listener_ports(self) -> list[tuple[int, str]]:
        """``(port, protocol)`` of every Gateway server in this gateway's configuration."""
        return list(_listener_ports(self.config))

    def port_for(self, protocol: str) -> int | None:
        return next((p for p, proto in self.listener_ports() if proto == protocol), None)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    name: str
    locality: str
    gateway: GatewayNode
    pods: tuple[PodSpec, ...]


@dataclass(frozen=True, slots=True)
class SocketNeed:
    """A socket some lab process binds: checked free before the lab starts anything."""

    owner: str
    host: str
    port: int
    proto: str = "tcp"


@dataclass(frozen=True, slots=True)
class Topology:
    path: Path
    root: Path
    dns_listen: tuple[str, int]
    control: tuple[str, int]
    tier1: GatewayNode
    clusters: tuple[ClusterSpec, ...]

    @property
    def gateways(self) -> tuple[GatewayNode, ...]:
        return (*(c.gateway for c in self.clusters), self.tier1)

    def cluster(self, name: str) -> ClusterSpec:
        for c in self.clusters:
            if c.name == name:
                return c
        raise KeyError(f"no cluster {name!r} in {self.path}")

    def dns_records(self) -> dict[str, list[str]]:
        """Every ``dns`` name of the topology with its addresses."""
        records: dict[str, list[str]] = {}
        for c in self.clusters:
            if c.gateway.dns:
                records.setdefault(c.gateway.dns, []).append(c.gateway.address)
            for pod in c.pods:
                records.setdefault(pod.dns, []).extend(pod.addresses)
        return records

    def pod_instances(self, cluster: str) -> list[PodInstance]:
        c = self.cluster(cluster)
        out: list[PodInstance] = []
        for pod in c.pods:
            urls = {role: self._backend_url(name) for role, name in pod.backends.items()}
            for i, address in enumerate(pod.addresses):
                out.append(
                    PodInstance(
                        name=f"{pod.service}-{pod.version}-{i}",
                        service=pod.service,
                        role=pod.role,
                        version=pod.version,
                        cluster=c.name,
                        locality=c.locality,
                        host=address,
                        port=pod.port,
                        backend_urls=urls,
                    )
                )
        return out

    def _backend_url(self, dns_name: str) -> str:
        # Pods have no resolver pointed at the lab DNS; the topology knows the same answer.
        for c in self.clusters:
            for pod in c.pods:
                if pod.dns == dns_name:
                    return f"http://{pod.addresses[0]}:{pod.port}"
        raise TopologyError(f"{self.path}: backend {dns_name!r} is not the dns of any pod")

    def sockets(self) -> list[SocketNeed]:
        needs = [
            SocketNeed("lab control API", *self.control),
            SocketNeed("dns", *self.dns_listen, proto="tcp"),
            SocketNeed("dns", *self.dns_listen, proto="udp"),
        ]
        for c in self.clusters:
            needs += [
                SocketNeed(f"pods-{c.name}", p.host, p.port) for p in self.pod_instances(c.name)
            ]
        for gw in self.gateways:
            needs.append(SocketNeed(gw.name, *gw.admin))
            needs += [SocketNeed(gw.name, gw.address, port) for port, _ in gw.listener_ports()]
        return needs


@functools.lru_cache(maxsize=16)
def _listener_ports(config: tuple[Path, ...]) -> tuple[tuple[int, str], ...]:
    loaded = load_resources(list(config))
    ports: dict[int, str] = {}
    for gw in loaded.resources.gateways:
        for server in gw.spec.servers:
            ports.setdefault(server.port.number, str(server.port.protocol).upper())
    return tuple(sorted(ports.items()))


def default_path() -> Path:
    """``deploy/lab/topology.yaml`` of the source tree this package runs from, else of cwd."""
    here = Path(__file__).resolve().parents[1] / "deploy" / "lab" / "topology.yaml"
    return here if here.is_file() else Path.cwd() / "deploy" / "lab" / "topology.yaml"


def load_topology(path: Path | None = None) -> Topology:
    path = (path or default_path()).resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TopologyError(f"cannot read topology {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TopologyError(f"{path}: not valid YAML: {exc}") from exc
    doc = _mapping(data, f"{path}", {"dns", "tier1", "clusters", "control"})
    root = path.parent
    dns = _mapping(doc.get("dns"), f"{path}: dns", {"listen"})
    t1 = _mapping(doc.get("tier1"), f"{path}: tier1", {"address", "admin", "locality", "config"})
    tier1 = GatewayNode(
        name="tier1-gateway",
        tier="tier1",
        cluster="",
        address=_ip(t1.get("address"), f"{path}: tier1.address"),
        admin=_hostport(t1.get("admin"), f"{path}: tier1.admin"),
        locality=str(t1.get("locality", "")),
        dns=None,
        config=_folders(root, t1.get("config"), f"{path}: tier1.config"),
    )
    raw_clusters = _mapping(doc.get("clusters"), f"{path}: clusters", None)
    clusters = tuple(_cluster(root, path, str(n), v) for n, v in raw_clusters.items())
    if not clusters:
        raise TopologyError(f"{path}: clusters: at least one cluster is required")
    topo = Topology(
        path=path,
        root=root,
        dns_listen=_hostport(dns.get("listen"), f"{path}: dns.listen"),
        control=_hostport(doc["control"], f"{path}: control")
        if "control" in doc
        else DEFAULT_CONTROL,
        tier1=tier1,
        clusters=clusters,
    )
    _check_consistency(topo)
    return topo


def _cluster(root: Path, path: Path, name: str, raw: Any) -> ClusterSpec:
    where = f"{path}: clusters.{name}"
    c = _mapping(raw, where, {"locality", "gateway", "config", "pods"})
    gw = _mapping(c.get("gateway"), f"{where}.gateway", {"address", "admin", "dns"})
    locality = str(c.get("locality", ""))
    node = GatewayNode(
        name=f"tier2-{name}",
        tier="tier2",
        cluster=name,
        address=_ip(gw.get("address"), f"{where}.gateway.address"),
        admin=_hostport(gw.get("admin"), f"{where}.gateway.admin"),
        locality=locality,
        dns=str(gw["dns"]) if gw.get("dns") else None,
        config=_folders(root, c.get("config"), f"{where}.config"),
    )
    raw_pods = c.get("pods") or []
    if not isinstance(raw_pods, list):
        raise TopologyError(f"{where}.pods: expected a list")
    pods = tuple(_pod(p, f"{where}.pods[{i}]") for i, p in enumerate(raw_pods))
    return ClusterSpec(name=name, locality=locality, gateway=node, pods=pods)


def _pod(raw: Any, where: str) -> PodSpec:
    keys = {"service", "role", "version", "dns", "addresses", "port", "backends"}
    p = _mapping(raw, where, keys)
    for required in ("service", "role", "dns", "addresses", "port"):
        if required not in p:
            raise TopologyError(f"{where}: {required} is required")
    role = str(p["role"])
    if role not in POD_ROLES:
        raise TopologyError(f"{where}.role: {role!r} is not one of {', '.join(POD_ROLES)}")
    addresses = p["addresses"]
    if not isinstance(addresses, list) or not addresses:
        raise TopologyError(f"{where}.addresses: expected a non-empty list of IP addresses")
    backends = _mapping(p.get("backends") or {}, f"{where}.backends", set(_BACKEND_ROLES))
    return PodSpec(
        service=str(p["service"]),
        role=role,
        version=str(p.get("version", "v1")),
        dns=str(p["dns"]),
        addresses=tuple(_ip(a, f"{where}.addresses[{i}]") for i, a in enumerate(addresses)),
        port=_port(p["port"], f"{where}.port"),
        backends={str(k): str(v) for k, v in backends.items()},
    )


def _check_consistency(topo: Topology) -> None:
    owners: dict[tuple[str, int, str], str] = {}
    for need in topo.sockets():
        key = (need.host, need.port, need.proto)
        if key in owners:
            raise TopologyError(
                f"{topo.path}: {need.host}:{need.port} is used twice "
                f"({owners[key]} and {need.owner})"
            )
        owners[key] = need.owner


def _mapping(raw: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TopologyError(f"{where}: expected a mapping")
    if allowed is not None:
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            raise TopologyError(f"{where}: unknown field(s) {', '.join(unknown)}")
    return {str(k): v for k, v in raw.items()}


def _ip(raw: Any, where: str) -> str:
    try:
        return str(ipaddress.ip_address(str(raw)))
    except ValueError:
        raise TopologyError(f"{where}: {raw!r} is not an IP address") from None


def _port(raw: Any, where: str) -> int:
    if not isinstance(raw, int) or not 1 <= raw <= 65535:
        raise TopologyError(f"{where}: {raw!r} is not a port number (1-65535)")
    return raw


def _hostport(raw: Any, where: str) -> tuple[str, int]:
    host, sep, port = str(raw).rpartition(":")
    if not sep or not port.isdigit():
        raise TopologyError(f"{where}: expected HOST:PORT, got {raw!r}")
    return _ip(host, where), _port(int(port), where)


def _folders(root: Path, raw: Any, where: str) -> tuple[Path, ...]:
    if not isinstance(raw, list) or not raw:
        raise TopologyError(f"{where}: expected a list of folders relative to {root}")
    folders = tuple((root / str(f)).resolve() for f in raw)
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        raise TopologyError(f"{where}: no such folder: {', '.join(missing)}")
    return folders
