"""Control path: deploy/k8s keeps the admin port private (Service, NetworkPolicy, no open POSTs).

The NetworkPolicy is checked by evaluating it the way a CNI does for one connection (source
namespace, destination port name), so a rule that admits too much or too little fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.test_k8s_manifests import ADMIN_PORT, OVERLAYS, Obj, container, one, render

PROMETHEUS_NAMESPACE = "monitoring"


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(OVERLAYS[request.param])


def _port_names(c: Obj) -> dict[Any, str]:
    """Container port number and name, both mapped to the name."""
    out: dict[Any, str] = {}
    for p in c["ports"]:
        out[p["name"]] = p["name"]
        out[p["containerPort"]] = p["name"]
    return out


def admitted(policy: Obj, c: Obj, namespace: str, port: str, own_namespace: str) -> bool:
    """Whether ``policy`` admits a TCP connection from a pod in ``namespace`` to ``port``."""
    names = _port_names(c)
    for rule in policy["spec"].get("ingress", []):
        ports = rule.get("ports")
        if ports is not None and not any(
            names.get(p["port"]) == port and p.get("protocol", "TCP") == "TCP" for p in ports
        ):
            continue
        peers = rule.get("from")
        if peers is None:
            return True
        for peer in peers:
            assert set(peer) <= {"namespaceSelector", "podSelector"}, peer  # no ipBlock
            selector = peer.get("namespaceSelector")
            if selector is None:
                if namespace == own_namespace:
                    return True
                continue
            labels = {"kubernetes.io/metadata.name": namespace}
            assert set(selector) == {"matchLabels"}, selector
            if selector["matchLabels"].items() <= labels.items():
                return True
    return False


def test_service_never_exposes_the_admin_port(objects: list[Obj]) -> None:
    """No Service port targets the admin port, by name or by number."""
    for service in (o for o in objects if o["kind"] == "Service"):
        for port in service["spec"]["ports"]:
            assert port["targetPort"] not in ("admin", ADMIN_PORT), port
            assert port["port"] != ADMIN_PORT, port


def test_network_policy_admits_the_admin_port_only_from_prometheus(objects: list[Obj]) -> None:
    """The policy isolates the gateway pods for ingress; data ports are open to all, the admin
    port only to the Prometheus namespace (the kubelet, on the pod's node, is always let in)."""
    policy = one(objects, "NetworkPolicy")
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    c = container(objects)
    own = policy["metadata"]["namespace"]
    for namespace in (PROMETHEUS_NAMESPACE, own, "default", "kube-system"):
        assert admitted(policy, c, namespace, "http", own), namespace
        assert admitted(policy, c, namespace, "https", own), namespace
        expected = namespace == PROMETHEUS_NAMESPACE
        assert admitted(policy, c, namespace, "admin", own) is expected, namespace


def test_prometheus_scrapes_the_admitted_port(objects: list[Obj]) -> None:
    """The scrape annotations name the admin port the policy opens to Prometheus."""
    deployment = one(objects, "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ADMIN_PORT)
    assert _port_names(container(objects))[ADMIN_PORT] == "admin"


def test_admin_posts_stay_refused_in_the_cluster(objects: list[Obj]) -> None:
    """No token file and no loopback exception: POST /reload and /drain answer 401 in a pod
    (config changes arrive through the mounted ConfigMap, drains through SIGTERM)."""
    args = container(objects)["args"]
    assert not any(a.startswith("--admin-token-file") for a in args)
    assert "--admin-allow-unauthenticated-loopback" not in args
