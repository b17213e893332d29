"""Control path: read YAML/JSON files and directories into typed ``Resources``.

This is the only module of ``config`` that touches the filesystem. Files may hold several
documents (``---``); directories are read recursively in name order, skipping hidden entries
(which also skips the ``..data`` indirection of Kubernetes ConfigMap volumes). Each document
is checked against its kind's schema; every problem is reported, with its file, document
index and field path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway_core.config._base import ApiModel
from gateway_core.config.common import ObjectMeta
from gateway_core.config.diagnostics import Diagnostics, Origin, format_loc
from gateway_core.config.extensions import EXTENSION_GROUP, EXTENSION_KINDS, EXTENSION_VERSIONS
from gateway_core.config.resources import (
    ISTIO_GROUP,
    ISTIO_VERSIONS,
    KIND_SPECS,
    SECURITY_GROUP,
    SECURITY_VERSIONS,
    Resource,
    Resources,
)
from gateway_core.config.resources import SECURITY_KINDS as BUCKETED_SECURITY_KINDS
from gateway_core.config.security import SECURITY_KINDS as AUTHN_KINDS

SECURITY_KINDS = {**BUCKETED_SECURITY_KINDS, **AUTHN_KINDS}
"""``security.istio.io`` kinds: AuthorizationPolicy has its own bucket in ``Resources``;
RequestAuthentication is kept with the extensions (``config/security.py``)."""

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")

try:  # the C loader is several times faster on large configs
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class LoadResult:
    resources: Resources
    diagnostics: Diagnostics
    files: tuple[str, ...]


def expand_paths(paths: Iterable[str | os.PathLike[str]], diags: Diagnostics) -> list[Path]:
    """Files named directly, plus config files found under named directories."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in _walk(path) if p.suffix in CONFIG_SUFFIXES and p.is_file())
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            diags.error(f"no such file or directory: {path}")
    return out


def _walk(root: Path) -> Iterable[Path]:
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry)
        else:
            yield entry


def load_resources(paths: Sequence[str | os.PathLike[str]]) -> LoadResult:
    """Load every document under ``paths``. Never raises for bad input: see ``diagnostics``."""
    diags = Diagnostics()
    files = expand_paths(paths, diags)
    docs: list[tuple[Origin, Any]] = []
    for file in files:
        docs.extend(_read_documents(file, diags))
    resources = parse_documents(docs, diags)
    return LoadResult(resources, diags, tuple(str(f) for f in files))


def load_text(text: str, name: str = "<string>") -> LoadResult:
    """Load documents from a YAML string (tests, ``explain`` with inline config)."""
    diags = Diagnostics()
    docs = _parse_yaml(text, name, diags)
    return LoadResult(parse_documents(docs, diags), diags, (name,))


def _read_documents(file: Path, diags: Diagnostics) -> list[tuple[Origin, Any]]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        diags.error(f"cannot read file: {exc}", origin=Origin(str(file), 0))
        return []
    return _parse_yaml(text, str(file), diags)


def _parse_yaml(text: str, name: str, diags: Diagnostics) -> list[tuple[Origin, Any]]:
    docs: list[tuple[Origin, Any]] = []
    index = 0
    try:
        for index, doc in enumerate(yaml.load_all(text, Loader=_Loader)):
            if doc is not None:
                docs.append((Origin(name, index), doc))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        diags.error(f"invalid YAML{where}: {problem}", origin=Origin(name, index))
    return docs


def parse_documents(docs: Sequence[tuple[Origin, Any]], diags: Diagnostics) -> Resources:
    buckets: dict[str, list[Resource[Any]]] = {
        kind: [] for kind in (*KIND_SPECS, *BUCKETED_SECURITY_KINDS)
    }
    extensions: list[Resource[ApiModel]] = []
    seen: dict[str, Origin] = {}
    for origin, doc in docs:
        resource = _parse_document(origin, doc, diags)
        if resource is None:
            continue
        previous = seen.get(resource.ref)
        if previous is not None:
            diags.error(
                f"duplicate resource (first defined at {previous})", origin=origin, ref=resource.ref
            )
            continue
        seen[resource.ref] = origin
        if resource.kind in buckets:
            buckets[resource.kind].append(resource)
        else:
            extensions.append(resource)
    return Resources(
        gateways=tuple(buckets["Gateway"]),
        virtual_services=tuple(buckets["VirtualService"]),
        destination_rules=tuple(buckets["DestinationRule"]),
        service_entries=tuple(buckets["ServiceEntry"]),
        extensions=tuple(extensions),
        authorization_policies=tuple(buckets["AuthorizationPolicy"]),
    )


def _parse_document(origin: Origin, doc: Any, diags: Diagnostics) -> Resource[Any] | None:
    if not isinstance(doc, dict):
        diags.error("document is not a mapping", origin=origin)
        return None
    api_version = doc.get("apiVersion")
    kind = doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        diags.error("document needs string fields apiVersion and kind", origin=origin)
        return None
    group, _, version = api_version.rpartition("/")
    if group == ISTIO_GROUP and kind in KIND_SPECS:
        spec_type: type[ApiModel] = KIND_SPECS[kind]
        versions: tuple[str, ...] = ISTIO_VERSIONS
    elif group == SECURITY_GROUP and kind in SECURITY_KINDS:
        spec_type = SECURITY_KINDS[kind]
        versions = SECURITY_VERSIONS
    elif group == EXTENSION_GROUP and kind in EXTENSION_KINDS:
        spec_type = EXTENSION_KINDS[kind]
        versions = EXTENSION_VERSIONS
    else:
        diags.warning(
            f"ignored: {api_version} {kind} is not a kind this gateway reads", origin=origin
        )
        return None
    meta_raw = doc.get("metadata")
    name_hint = meta_raw.get("name") if isinstance(meta_raw, dict) else None
    ns_hint = meta_raw.get("namespace", "default") if isinstance(meta_raw, dict) else "default"
    ref = f"{kind}/{ns_hint}/{name_hint}" if name_hint else kind
    if version not in versions:
        diags.error(
            f"unsupported apiVersion {api_version!r} (use {group}/{' or '.join(versions)})",
            origin=origin,
            ref=ref,
            path="apiVersion",
        )
        return None
    unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec", "status"})
    for key in unknown:
        diags.error("unknown field", origin=origin, ref=ref, path=str(key))
    ok = not unknown
    meta = _validate(ObjectMeta, meta_raw, origin, ref, "metadata", diags)
    spec = _validate(spec_type, doc.get("spec", {}), origin, ref, "spec", diags)
    if meta is None or spec is None or not ok:
        return None
    assert isinstance(meta, ObjectMeta)
    return Resource(kind=kind, api_version=api_version, meta=meta, spec=spec, origin=origin)


def _validate(
    model: type[ApiModel], raw: Any, origin: Origin, ref: str, root: str, diags: Diagnostics
) -> ApiModel | None:
    if raw is None:
        raw = {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            path = format_loc((root, *err["loc"]))
            diags.error(_error_message(err), origin=origin, ref=ref, path=path)
        return None


def _error_message(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")
