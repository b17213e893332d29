"""Control path (tests): render deploy/k8s kustomizations in Python, without kubectl.

Implements exactly the kustomize features deploy/k8s uses, with kustomize's semantics, so the
manifests can be validated on a machine without kubectl; where kubectl exists the tests compare
both renderings. Anything outside the subset raises ``KustomizeError`` instead of being ignored:

* ``resources`` (files, or directories holding a kustomization, rendered first);
* ``configMapGenerator`` with ``files`` and ``options.disableNameSuffixHash: true``;
* ``patches`` with a ``target`` (kind, name) and a JSON 6902 patch file (add, replace, remove);
* ``images`` (``newName``/``newTag``), ``namespace``, ``namePrefix`` (renamed ConfigMaps,
  Secrets, ServiceAccounts and Deployments are renamed where pod specs and HPAs refer to them);
* ``labels`` with ``includeSelectors``: Service selectors, workload selectors, pod template
  labels, topology spread and PodDisruptionBudget selectors, as kustomize's label field specs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "namePrefix",
    "labels",
    "configMapGenerator",
    "patches",
    "images",
}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}


class KustomizeError(ValueError):
    """The kustomization uses something outside the supported subset, or is malformed."""


def render(root: Path) -> list[Obj]:
    """The objects ``kubectl kustomize root`` would print (order aside)."""
    kfile = next((root / n for n in KUSTOMIZATION_FILES if (root / n).is_file()), None)
    if kfile is None:
        raise KustomizeError(f"{root}: no kustomization file")
    k = yaml.safe_load(kfile.read_text()) or {}
    unknown = sorted(set(k) - _KEYS)
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported field(s) {', '.join(unknown)}")
    objects: list[Obj] = []
    for entry in k.get("resources", []):
        path = (root / entry).resolve()
        objects += render(path) if path.is_dir() else _load(path)
    objects += [_config_map(root, gen) for gen in k.get("configMapGenerator", [])]
    for patch in k.get("patches", []):
        _patch(root, patch, objects)
    for image in k.get("images", []):
        _set_image(objects, image)
    if "namespace" in k:
        for obj in objects:
            if obj["kind"] not in _CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = k["namespace"]
    if "namePrefix" in k:
        _prefix(objects, k["namePrefix"])
    for spec in k.get("labels", []):
        _labels(objects, spec)
    return objects


def _load(path: Path) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _config_map(root: Path, gen: Obj) -> Obj:
    unknown = sorted(set(gen) - {"name", "files", "options"})
    if unknown or gen.get("options") != {"disableNameSuffixHash": True}:
        raise KustomizeError(
            f"configMapGenerator {gen.get('name')}: only name, files and "
            "options.disableNameSuffixHash: true are supported"
        )
    data: dict[str, str] = {}
    for item in gen["files"]:
        key, sep, rel = str(item).partition("=")
        source = root / (rel if sep else key)
        data[key if sep else source.name] = source.read_text()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": gen["name"]},
        "data": data,
    }


def _patch(root: Path, patch: Obj, objects: list[Obj]) -> None:
    target = patch.get("target") or {}
    if set(patch) != {"path", "target"} or set(target) - {"kind", "name"}:
        raise KustomizeError(f"patch {patch}: only path + target (kind, name) are supported")
    ops = yaml.safe_load((root / patch["path"]).read_text())
    if not isinstance(ops, list):
        raise KustomizeError(f"{patch['path']}: only JSON 6902 patches (a list of ops)")
    matched = [
        o
        for o in objects
        if o["kind"] == target.get("kind", o["kind"])
        and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])
    ]
    if not matched:
        raise KustomizeError(f"patch {patch['path']}: no object matches {target}")
    for obj in matched:
        for op in ops:
            apply_json6902(obj, op)


def apply_json6902(doc: Obj, op: Obj) -> None:
    """One RFC 6902 operation (add, replace, remove) applied to ``doc`` in place."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
    if not tokens:
        raise KustomizeError(f"{op}: the whole-document path is not supported")
    parent: Any = doc
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    last, kind = tokens[-1], op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            if not 0 <= index <= len(parent):
                raise KustomizeError(f"{op}: index out of range")
            parent.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            parent[index] = copy.deepcopy(op["value"])
        elif kind == "remove":
            del parent[index]
        else:
            raise KustomizeError(f"{op}: unsupported op {kind!r}")
        return
    if kind in ("replace", "remove") and last not in parent:
        raise KustomizeError(f"{op}: {op['path']} does not exist")
    if kind in ("add", "replace"):
        parent[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[last]
    else:
        raise KustomizeError(f"{op}: unsupported op {kind!r}")


def pod_spec(obj: Obj) -> Obj | None:
    if obj["kind"] in _WORKLOADS:
        spec: Obj = obj["spec"]["template"]["spec"]
        return spec
    return None


def _containers(obj: Obj) -> Iterator[Obj]:
    spec = pod_spec(obj)
    if spec is not None:
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


def _set_image(objects: list[Obj], image: Obj) -> None:
    if set(image) - {"name", "newName", "newTag"}:
        raise KustomizeError(f"images entry {image}: only name, newName, newTag are supported")
    for obj in objects:
        for container in _containers(obj):
            name, tag = _split_image(container["image"])
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            tag = image.get("newTag", tag)
            container["image"] = f"{name}:{tag}" if tag else name


def _split_image(ref: str) -> tuple[str, str]:
    # A colon after the last slash separates the tag; an earlier one belongs to a registry port.
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return (ref[:colon], ref[colon + 1 :]) if colon > slash else (ref, "")


def _prefix(objects: list[Obj], prefix: str) -> None:
    renamed: dict[tuple[str, str], str] = {}
    for obj in objects:
        old = obj["metadata"]["name"]
        obj["metadata"]["name"] = prefix + old
        renamed[(obj["kind"], old)] = prefix + old
    for obj in objects:
        for kind, holder, key in _references(obj):
            new = renamed.get((kind, holder[key]))
            if new is not None:
                holder[key] = new


def _references(obj: Obj) -> Iterator[tuple[str, Obj, str]]:
    """(referenced kind, dict holding the name, key) for every name reference in ``obj``."""
    if obj["kind"] == "HorizontalPodAutoscaler":
        ref = obj["spec"]["scaleTargetRef"]
        yield ref["kind"], ref, "name"
    spec = pod_spec(obj)
    if spec is None:
        return
    if "serviceAccountName" in spec:
        yield "ServiceAccount", spec, "serviceAccountName"
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"], "name"
        if "secret" in volume:
            yield "Secret", volume["secret"], "secretName"
    for container in _containers(obj):
        for source in container.get("envFrom", []):
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if field in source:
                    yield kind, source[field], "name"
        for env in container.get("env", []):
            value_from = env.get("valueFrom", {})
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if field in value_from:
                    yield kind, value_from[field], "name"


def _labels(objects: list[Obj], spec: Obj) -> None:
    if set(spec) - {"pairs", "includeSelectors"}:
        raise KustomizeError(f"labels entry {spec}: only pairs and includeSelectors")
    pairs: dict[str, str] = {str(k): str(v) for k, v in spec["pairs"].items()}
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if spec.get("includeSelectors"):
            for target in _selector_maps(obj):
                target.update(pairs)


def _selector_maps(obj: Obj) -> Iterator[dict[str, str]]:
    kind, spec = obj["kind"], obj.get("spec", {})
    if kind == "Service" and "selector" in spec:
        yield spec["selector"]
    if kind == "PodDisruptionBudget" and "matchLabels" in spec.get("selector", {}):
        yield spec["selector"]["matchLabels"]
    if kind in _WORKLOADS:
        yield spec["selector"].setdefault("matchLabels", {})
        yield spec["template"].setdefault("metadata", {}).setdefault("labels", {})
        for constraint in spec["template"]["spec"].get("topologySpreadConstraints", []):
            selector = constraint.get("labelSelector", {})
            if "matchLabels" in selector:
                yield selector["matchLabels"]
