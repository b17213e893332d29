"""Control path (tests): the Python kustomize renderer keeps kustomize's semantics on its subset."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from tests.deploy.kustomize import KustomizeError, Obj, apply_json6902, render

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: web
        image: registry.local:5000/team/web
        args: [a, b]
        envFrom: [{configMapRef: {name: settings}}]
      volumes:
      - {name: cfg, configMap: {name: settings}}
      - {name: tls, secret: {secretName: external-cert}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 3
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return root


def kind(objects: list[Obj], name: str) -> Obj:
    return next(o for o in objects if o["kind"] == name)


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "base/kustomization.yaml": "resources: [app.yaml]\n",
            "base/app.yaml": DEPLOYMENT,
            "overlay/settings.conf": "x = 1\n",
            "overlay/patch.yaml": """
                - {op: replace, path: /spec/template/spec/containers/0/args/0, value: z}
                - {op: add, path: /spec/template/spec/containers/0/args/-, value: c}
                - {op: remove, path: /spec/template/spec/topologySpreadConstraints/0/maxSkew}
            """,
            "overlay/kustomization.yaml": """
                namespace: prod
                namePrefix: p-
                resources: [../base]
                configMapGenerator:
                - name: settings
                  files: [settings.conf, renamed.conf=settings.conf]
                  options: {disableNameSuffixHash: true}
                patches:
                - path: patch.yaml
                  target: {kind: Deployment, name: web}
                images:
                - {name: registry.local:5000/team/web, newTag: "1.2"}
                labels:
                - pairs: {tier: edge}
                  includeSelectors: true
            """,
        },
    )
    return tmp_path / "overlay"


def test_overlay_transforms_names_namespaces_and_references(overlay: Path) -> None:
    """Prefix and namespace apply to all objects; references follow renamed objects only."""
    objects = render(overlay)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == [
        ("ConfigMap", "p-settings"),
        ("Deployment", "p-web"),
        ("HorizontalPodAutoscaler", "p-web"),
        ("Service", "p-web"),
    ]
    assert {o["metadata"]["namespace"] for o in objects} == {"prod"}
    pod = kind(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == "p-settings"
    assert pod["containers"][0]["envFrom"][0]["configMapRef"]["name"] == "p-settings"
    # Neither the Secret nor the ServiceAccount is part of the build: their names stay.
    assert pod["volumes"][1]["secret"]["secretName"] == "external-cert"
    assert pod["serviceAccountName"] == "web"
    hpa = kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "p-web"


def test_overlay_rendering_equals_kubectl_kustomize(overlay: Path) -> None:
    """Every feature of the subset renders as `kubectl kustomize` renders it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    theirs = sorted((o for o in yaml.safe_load_all(out) if o), key=lambda o: o["kind"])
    assert sorted(render(overlay), key=lambda o: o["kind"]) == theirs


def test_generator_patch_and_image(overlay: Path) -> None:
    """Files become ConfigMap keys; JSON 6902 ops apply in order; the image tag is replaced."""
    objects = render(overlay)
    assert kind(objects, "ConfigMap")["data"] == {
        "settings.conf": "x = 1\n",
        "renamed.conf": "x = 1\n",
    }
    c = kind(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["z", "b", "c"]
    assert c["image"] == "registry.local:5000/team/web:1.2"


def test_labels_reach_selectors_and_templates(overlay: Path) -> None:
    """includeSelectors adds the pairs to metadata, selectors, pod labels and spread selectors."""
    objects = render(overlay)
    want = {"app": "web", "tier": "edge"}
    deployment = kind(objects, "Deployment")
    assert deployment["spec"]["selector"]["matchLabels"] == want
    assert deployment["spec"]["template"]["metadata"]["labels"] == want
    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"] == want
    assert "maxSkew" not in spread
    assert kind(objects, "Service")["spec"]["selector"] == want
    assert kind(objects, "ConfigMap")["metadata"]["labels"] == {"tier": "edge"}
    assert kind(objects, "HorizontalPodAutoscaler")["metadata"]["labels"] == {"tier": "edge"}


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("resources: [app.yaml]\nnameSuffix: -x\n", "unsupported field"),
        (
            "configMapGenerator:\n- {name: c, files: [app.yaml]}\n",
            "disableNameSuffixHash",
        ),
        (
            "resources: [app.yaml]\npatches:\n- {path: smp.yaml, target: {kind: Deployment}}\n",
            "JSON 6902",
        ),
        (
            "resources: [app.yaml]\npatches:\n- {path: p.yaml, target: {kind: Job}}\n",
            "no object matches",
        ),
        (
            "resources: [app.yaml]\nlabels:\n- {pairs: {a: b}, includeTemplates: true}\n",
            "only pairs",
        ),
    ],
)
def test_unsupported_features_are_refused(tmp_path: Path, kustomization: str, message: str) -> None:
    """Anything outside the subset raises instead of rendering something kustomize would not."""
    write(
        tmp_path,
        {
            "kustomization.yaml": kustomization,
            "app.yaml": DEPLOYMENT,
            "p.yaml": "- {op: add, path: /x, value: 1}\n",
            "smp.yaml": "spec: {replicas: 2}\n",
        },
    )
    with pytest.raises(KustomizeError, match=message):
        render(tmp_path)


def test_json6902_follows_rfc_6902() -> None:
    """add inserts before an index or appends with '-', replace/remove need an existing path."""
    doc: Obj = yaml.safe_load("{a: [1, 3], b: {c: 1}, 'd/e': 0}")
    apply_json6902(doc, {"op": "add", "path": "/a/1", "value": 2})
    apply_json6902(doc, {"op": "add", "path": "/a/-", "value": 4})
    apply_json6902(doc, {"op": "replace", "path": "/b/c", "value": 5})
    apply_json6902(doc, {"op": "remove", "path": "/d~1e"})
    assert doc == {"a": [1, 2, 3, 4], "b": {"c": 5}}
    with pytest.raises(KustomizeError, match="does not exist"):
        apply_json6902(doc, {"op": "replace", "path": "/b/missing", "value": 1})
    with pytest.raises(KustomizeError, match="out of range"):
        apply_json6902(doc, {"op": "add", "path": "/a/9", "value": 1})
    with pytest.raises(KustomizeError, match="unsupported op"):
        apply_json6902(doc, {"op": "move", "path": "/b/c", "from": "/a"})
