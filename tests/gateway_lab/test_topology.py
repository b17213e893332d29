"""deploy/lab/topology.yaml: parsing, what the lab derives from it, and the errors it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_lab.topology import SocketNeed, TopologyError, load_topology

GATEWAY = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: lab}}
spec:
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
"""


def write_topology(root: Path, body: str, *, tier1_port: int = 18080, c1_port: int = 18081) -> Path:
    for folder, port in (("t1", tier1_port), ("c1", c1_port)):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "gateway.yaml").write_text(GATEWAY.format(port=port))
    path = root / "topology.yaml"
    path.write_text(body)
    return path


MINIMAL = """\
dns: {listen: 127.0.0.1:15353}
control: 127.0.0.1:16999
tier1: {address: 127.0.0.1, admin: 127.0.0.1:15000, locality: r1/z1, config: [t1]}
clusters:
  c1:
    locality: r1/z1
    gateway: {address: 127.0.1.1, admin: 127.0.1.1:15000, dns: tier2.c1.lab}
    config: [c1]
    pods:
    - {service: web, role: productpage, dns: web.c1.lab, addresses: [127.0.1.10], port: 9080,
       backends: {details: details.c1.lab}}
    - {service: details, role: details, version: v2, dns: details.c1.lab,
       addresses: [127.0.1.20, 127.0.1.21], port: 9081}
"""


def test_lab_topology_has_three_clusters_with_their_localities() -> None:
    """The shipped topology: Tier-1 plus cluster-1..3 in the issue's localities."""
    topo = load_topology()
    assert [(c.name, c.locality) for c in topo.clusters] == [
        ("cluster-1", "us-west1/us-west1-a"),
        ("cluster-2", "us-west1/us-west1-b"),
        ("cluster-3", "us-east1/us-east1-b"),
    ]
    assert [g.name for g in topo.gateways] == [
        "tier2-cluster-1",
        "tier2-cluster-2",
        "tier2-cluster-3",
        "tier1-gateway",
    ]
    assert topo.tier1.listener_ports() == [(8080, "HTTP"), (8443, "HTTPS")]
    assert topo.control == ("127.0.0.1", 15999)


def test_lab_dns_zone_serves_gateways_and_every_pod_address() -> None:
    """Every dns name maps to its addresses; cluster-1 has 14 user pods."""
    records = load_topology().dns_records()
    assert records["tier2.cluster-2.lab"] == ["127.0.2.1"]
    assert records["user.cluster-1.lab"] == [f"127.0.1.{i}" for i in range(100, 114)]
    assert records["echo.cluster-2.lab"] == ["127.0.2.70", "127.0.2.71", "127.0.2.72"]
    assert records["grpc-demo.cluster-2.lab"] == ["127.0.2.80", "127.0.2.81", "127.0.2.82"]
    assert records["grpc-demo.cluster-3.lab"] == ["127.0.3.80", "127.0.3.81"]
    assert len(records) == 27


def test_cluster_1_runs_productpage_without_backends() -> None:
    """cluster-1's productpage has no details/reviews URLs, so its page shows them missing."""
    pods = load_topology().pod_instances("cluster-1")
    page = next(p for p in pods if p.service == "productpage")
    assert (page.name, page.host, page.port, dict(page.backend_urls)) == (
        "productpage-v1-0",
        "127.0.1.10",
        9080,
        {},
    )
    assert len([p for p in pods if p.service == "user"]) == 14


def test_pod_instances_resolve_backends_and_name_each_pod(tmp_path: Path) -> None:
    """One instance per address, named service-version-index, backends as URLs."""
    topo = load_topology(write_topology(tmp_path, MINIMAL))
    pods = topo.pod_instances("c1")
    assert [(p.name, p.host, p.port, p.version) for p in pods] == [
        ("web-v1-0", "127.0.1.10", 9080, "v1"),
        ("details-v2-0", "127.0.1.20", 9081, "v2"),
        ("details-v2-1", "127.0.1.21", 9081, "v2"),
    ]
    assert dict(pods[0].backend_urls) == {"details": "http://127.0.1.20:9081"}
    assert pods[0].cluster == "c1" and pods[0].locality == "r1/z1"


def test_sockets_list_everything_the_lab_binds(tmp_path: Path) -> None:
    """Control, DNS (TCP and UDP), pods, admin and Gateway listener ports, with owners."""
    topo = load_topology(write_topology(tmp_path, MINIMAL))
    assert topo.sockets() == [
        SocketNeed("lab control API", "127.0.0.1", 16999),
        SocketNeed("dns", "127.0.0.1", 15353, "tcp"),
        SocketNeed("dns", "127.0.0.1", 15353, "udp"),
        SocketNeed("pods-c1", "127.0.1.10", 9080),
        SocketNeed("pods-c1", "127.0.1.20", 9081),
        SocketNeed("pods-c1", "127.0.1.21", 9081),
        SocketNeed("tier2-c1", "127.0.1.1", 15000),
        SocketNeed("tier2-c1", "127.0.1.1", 18081),
        SocketNeed("tier1-gateway", "127.0.0.1", 15000),
        SocketNeed("tier1-gateway", "127.0.0.1", 18080),
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("127.0.0.1:15353}", "127.0.0.1}", "dns.listen: expected HOST:PORT"),
        ("[127.0.1.10]", "[127.0.1.999]", "pods[0].addresses[0]: '127.0.1.999' is not an IP"),
        ("role: productpage", "role: webapp", "pods[0].role: 'webapp' is not one of productpage"),
        ("config: [c1]", "config: [c9]", "clusters.c1.config: no such folder"),
        ("{details: details.c1.lab}", "{details: nowhere.lab}", "backend 'nowhere.lab' is not"),
        ("admin: 127.0.1.1:15000", "admin: 127.0.1.10:9080", "127.0.1.10:9080 is used twice"),
        ("    gateway:", "    zone: z\n    gateway:", "clusters.c1: unknown field(s) zone"),
    ],
)
def test_topology_errors_name_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    """A broken topology raises TopologyError naming the file and the offending field."""
    assert old in MINIMAL
    path = write_topology(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(TopologyError) as caught:
        load_topology(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_topology_file_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as unreadable, not as a traceback."""
    with pytest.raises(TopologyError, match=r"cannot read topology .*nope\.yaml"):
        load_topology(tmp_path / "nope.yaml")
