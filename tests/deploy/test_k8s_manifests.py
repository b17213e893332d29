"""Control path: deploy/k8s renders, validates offline against the Kubernetes schemas, and is safe.

The overlays are rendered by ``kubectl kustomize`` (kustomize v5 is built into kubectl); where
kubectl is absent the tests that need a rendering skip, saying so. Every object is validated with
kubernetes-validate's bundled JSON schemas of the newest release it ships, in strict mode
(unknown fields are errors). The assertions cover what the schemas cannot: replicas, probes,
drain timing, hardening, and that the Istio YAML in the ConfigMap loads in the gateway with
every credential mounted.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.version import Version

from gateway_core.pipeline import build_snapshot
from gateway_core.snapshot import Locality, NodeInfo, Snapshot

Obj = dict[str, Any]

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
OVERLAYS = {"tier1": K8S / "overlays" / "tier1", "tier2": K8S / "overlays" / "tier2"}
EXAMPLE = K8S / "examples" / "bookinfo-pods"
KUSTOMIZATIONS = [*OVERLAYS.values(), EXAMPLE]
ADMIN_PORT = 15000
# The gateway CLI's defaults (gateway_core/cli.py) when the args do not set them.
DRAIN_DEFAULTS = {"--drain-propagation": 5.0, "--drain-deadline": 25.0}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}


@functools.cache
def _kustomize_output(root: Path) -> str:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is absent: deploy/k8s cannot be rendered (kubectl kustomize)")
    done = subprocess.run(
        [kubectl, "kustomize", str(root)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"kubectl kustomize {root} failed:\n{done.stderr}"
    return done.stdout


def render(root: Path) -> list[Obj]:
    """The objects ``kubectl kustomize root`` renders (fresh copies: tests may change them)."""
    return [obj for obj in yaml.safe_load_all(_kustomize_output(root)) if obj]


def pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in _WORKLOADS:
        spec: Obj = obj["spec"]["template"]["spec"]
        return spec
    return None


def by_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str) -> Obj:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(objects: list[Obj]) -> Obj:
    spec = pod_spec(one(objects, "Deployment"))
    assert spec is not None
    containers: list[Obj] = spec["containers"]
    assert len(containers) == 1
    return containers[0]


def flag(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def key(obj: Obj) -> tuple[str, str, str, str]:
    meta = obj["metadata"]
    return obj["apiVersion"], obj["kind"], meta.get("namespace", ""), meta["name"]


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    name: str = request.param
    return name, render(OVERLAYS[name])


def test_overlays_render_the_full_set_of_objects(overlay: tuple[str, list[Obj]]) -> None:
    """Each overlay renders one of each gateway object, in its namespace with its name prefix."""
    tier, objects = overlay
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {f"gateway-{tier}"}
    assert all(o["metadata"]["name"].startswith(f"{tier}-gateway") for o in objects)
    assert all(o["metadata"]["labels"]["app.kubernetes.io/component"] == tier for o in objects)


def test_schemas_are_bundled_for_a_current_release() -> None:
    """kubernetes-validate ships schemas for Kubernetes 1.35 or newer (no download needed)."""
    assert Version(kubernetes_validate.latest_version()) >= Version("1.35")


@pytest.mark.parametrize("root", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_every_object_validates_against_the_kubernetes_schema(root: Path) -> None:
    """Every rendered object is valid for the newest bundled release, unknown fields rejected."""
    version = kubernetes_validate.latest_version()
    for obj in render(root):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{key(obj)} is invalid for {version}: {path}: {exc.message}")


def test_schema_validation_rejects_a_misspelt_field() -> None:
    """Strict validation catches a typo (the validation above is not vacuous)."""
    deployment = one(render(OVERLAYS["tier1"]), "Deployment")
    pod = pod_spec(deployment)
    assert pod is not None
    pod["containers"][0]["readinesProbe"] = pod["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_deployment_runs_two_spread_replicas(overlay: tuple[str, list[Obj]]) -> None:
    """At least two replicas, spread over zones and nodes, rolled without losing capacity."""
    _, objects = overlay
    deployment = one(objects, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    constraints = spec["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"]: c for c in constraints}
    assert set(keys) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for c in constraints:
        assert c["maxSkew"] == 1
        assert c["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_probes_use_the_admin_endpoints(overlay: tuple[str, list[Obj]]) -> None:
    """Readiness is GET /ready and liveness GET /healthz, both on the admin port."""
    _, objects = overlay
    c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["admin"] == ADMIN_PORT
    assert flag(c["args"], "--admin-address") == f"0.0.0.0:{ADMIN_PORT}"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    # A draining pod must leave the endpoints at the first failed readiness check.
    assert c["readinessProbe"]["failureThreshold"] == 1


def test_grace_period_covers_prestop_and_drain(overlay: tuple[str, list[Obj]]) -> None:
    """terminationGracePeriodSeconds >= preStop sleep + drain propagation + drain deadline."""
    _, objects = overlay
    deployment = one(objects, "Deployment")
    c = container(objects)
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = sum(float(flag(c["args"], name) or default) for name, default in DRAIN_DEFAULTS.items())
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert pre_stop == 5.0
    assert drain == 30.0
    assert grace >= pre_stop + drain
    assert grace == 40


def test_pods_run_hardened(overlay: tuple[str, list[Obj]]) -> None:
    """Non-root, read-only root filesystem, no capabilities, no token, limits set."""
    _, objects = overlay
    pod = pod_spec(one(objects, "Deployment"))
    assert pod is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    c = container(objects)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert set(c["resources"]["requests"]) == {"cpu", "memory"}
    assert set(c["resources"]["limits"]) == {"cpu", "memory"}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "/tmp" in mounts
    assert all(m.get("readOnly") for path, m in mounts.items() if path != "/tmp")


def test_locality_comes_from_the_pod_topology_labels(overlay: tuple[str, list[Obj]]) -> None:
    """GATEWAY_REGION/ZONE are read through the downward API from the pod's topology labels."""
    _, objects = overlay
    env = {e["name"]: e for e in container(objects)["env"]}
    for name, label in (("GATEWAY_REGION", "region"), ("GATEWAY_ZONE", "zone")):
        field = env[name]["valueFrom"]["fieldRef"]["fieldPath"]
        assert field == f"metadata.labels['topology.kubernetes.io/{label}']"
    assert flag(container(objects)["args"], "--locality") is None


def test_service_is_a_load_balancer_for_the_gateway_pods(overlay: tuple[str, list[Obj]]) -> None:
    """The LoadBalancer Service selects the gateway pods and targets their named ports."""
    _, objects = overlay
    service = one(objects, "Service")
    deployment = one(objects, "Deployment")
    assert service["spec"]["type"] == "LoadBalancer"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    names = {p["name"] for p in container(objects)["ports"]}
    ports = {p["port"]: p["targetPort"] for p in service["spec"]["ports"]}
    assert ports == {80: "http", 443: "https"}
    assert set(ports.values()) <= names


def test_pdb_and_hpa_protect_the_deployment(overlay: tuple[str, list[Obj]]) -> None:
    """The PDB selects the gateway pods; the HPA scales the Deployment on CPU from 2 replicas."""
    _, objects = overlay
    deployment = one(objects, "Deployment")
    pdb = one(objects, "PodDisruptionBudget")
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def compiled(tier: str, objects: list[Obj], tmp: Path) -> tuple[Snapshot, Obj]:
    """The gateway's snapshot of the ConfigMap's Istio YAML, as the pod would load it."""
    config_map = one(objects, "ConfigMap")
    for name, text in config_map["data"].items():
        (tmp / name).write_text(text)
    args: list[str] = container(objects)["args"]
    node = NodeInfo(
        tier=tier,
        cluster_name=flag(args, "--cluster-name") or "",
        locality=Locality.parse("us-west1/us-west1-a"),
        cert_dir=flag(args, "--cert-dir") or "",
    )
    result = build_snapshot([tmp], node)
    assert result.ok, [str(d) for d in result.diagnostics]
    assert result.snapshot is not None
    return result.snapshot, config_map


def test_configmap_carries_valid_istio_yaml(overlay: tuple[str, list[Obj]], tmp_path: Path) -> None:
    """The ConfigMap, mounted at --config, loads and compiles; its listeners are the pod ports."""
    tier, objects = overlay
    snapshot, config_map = compiled(tier, objects, tmp_path)
    assert config_map["metadata"]["name"] == f"{tier}-gateway-config"
    c = container(objects)
    pod = pod_spec(one(objects, "Deployment"))
    assert pod is not None
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == flag(c["args"], "--config"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert sorted((lst.port, str(lst.protocol)) for lst in snapshot.listeners) == [
        (ports["http"], "HTTP"),
        (ports["https"], "HTTPS"),
    ]


def _tls_files(snapshot: Snapshot) -> set[str]:
    files: set[str] = set()
    for listener in snapshot.listeners:
        for server in listener.servers:
            if server.tls is not None:
                files |= {server.tls.cert_file, server.tls.key_file, server.tls.ca_file or ""}
    for cluster in snapshot.clusters.values():
        tls: Any = cluster.tls
        if tls is not None:
            files |= {tls.cert_file or "", tls.key_file or "", tls.ca_file or ""}
    return files - {""}


def test_every_credential_is_a_mounted_secret(
    overlay: tuple[str, list[Obj]], tmp_path: Path
) -> None:
    """Each credentialName the config uses is a Secret mounted at --cert-dir/<credentialName>."""
    tier, objects = overlay
    snapshot, _ = compiled(tier, objects, tmp_path)
    c = container(objects)
    pod = pod_spec(one(objects, "Deployment"))
    assert pod is not None
    secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    mounts = c["volumeMounts"]
    mounted = {m["mountPath"]: secrets[m["name"]] for m in mounts if m["name"] in secrets}
    cert_dir = flag(c["args"], "--cert-dir")
    needed = {}
    for path in _tls_files(snapshot):
        directory, _, filename = path.rpartition("/")
        assert filename in ("tls.crt", "tls.key", "ca.crt")
        needed[directory] = directory.removeprefix(f"{cert_dir}/")
    assert needed, "the configuration uses no certificates"
    # Istio semantics: credentialName names the Secret; the mount path is derived from it.
    assert mounted == needed
    expected = {"tier1": {"bookinfo-credential", "tier1-client"}, "tier2": {"tier2-credential"}}
    assert set(mounted.values()) == expected[tier]
    assert all(v["secret"]["defaultMode"] == 0o440 for v in pod["volumes"] if "secret" in v)


def test_tier2_cluster_name_is_set_and_tier1_has_none() -> None:
    """Tier-2 pods run as a named cluster (subset labels); Tier-1 runs as no cluster."""
    tier1 = container(render(OVERLAYS["tier1"]))["args"]
    tier2 = container(render(OVERLAYS["tier2"]))["args"]
    assert (tier1[0], tier2[0]) == ("tier1", "tier2")
    assert flag(tier1, "--cluster-name") is None
    assert flag(tier2, "--cluster-name") == "cluster-1"


def test_headless_service_publishes_every_pod_to_the_tier2_config(tmp_path: Path) -> None:
    """The example's headless Service selects its pods and is the host Tier-2 resolves."""
    objects = render(EXAMPLE)
    service = one(objects, "Service")
    deployment = one(objects, "Deployment")
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["replicas"] >= 2
    dns_name = "{}.{}.svc.cluster.local".format(
        service["metadata"]["name"], service["metadata"]["namespace"]
    )
    snapshot, _ = compiled("tier2", render(OVERLAYS["tier2"]), tmp_path)
    endpoints = {ep.address for c in snapshot.clusters.values() for ep in c.endpoints}
    assert endpoints == {dns_name}
    port = service["spec"]["ports"][0]
    assert {c.port for c in snapshot.clusters.values()} == {port["port"]}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "--listen") == f"0.0.0.0:{port['port']}"


def test_workers_follow_the_cpu_limit(overlay: tuple[str, list[Obj]], tmp_path: Path) -> None:
    """``--workers=auto`` with the container's CPU limit as the cgroup v2 quota gives one
    worker per CPU of the limit (rounded up)."""
    from gateway_core.server.cpus import available_cpus

    c = container(overlay[1])
    assert "--workers=auto" in c["args"]
    raw = str(c["resources"]["limits"]["cpu"])
    cpus = int(raw[:-1]) / 1000 if raw.endswith("m") else float(raw)
    cgroup = tmp_path / "sys/fs/cgroup"
    cgroup.mkdir(parents=True)
    (cgroup / "cpu.max").write_text(f"{int(cpus * 100000)} 100000\n")
    assert available_cpus(tmp_path, lambda: 64) == math.ceil(cpus) == 2
