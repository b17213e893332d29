"""Routing scenarios written as data: YAML config + request → expected route and destinations.

Each file in ``routing/`` holds ``config`` (Istio YAML, several documents) or ``config_files``
(paths relative to the repository, or ``shared:`` paths into ../shared), and ``cases``: a request
(``url``, optional ``method`` and ``headers``) and the expected result. Fields left out of
``expect`` are "don't care" (Istio simulation tests do the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway_core.compiler import compile_snapshot
from gateway_core.config.loader import load_resources, load_text
from gateway_core.config.validation import validate_resources
from gateway_core.routing.explain import Call, explain
from gateway_core.snapshot import Locality, NodeInfo, Snapshot
from tests.helpers import REPO, shared_path

HERE = Path(__file__).parent / "routing"


_RESULT_FIELDS = ("route", "virtual_service", "rule_index", "status", "redirect", "action")


def _load_scenarios() -> list[Any]:
    params = []
    for path in sorted(HERE.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            params.append(pytest.param(path.name, doc, case, id=f"{path.stem}:{case['name']}"))
    return params


def _snapshot(doc: dict[str, Any]) -> Snapshot:
    node = NodeInfo(
        tier=doc.get("tier", "tier2"),
        locality=Locality.parse(doc.get("locality")),
        cert_dir="certs",
    )
    if "config" in doc:
        loaded = load_text(doc["config"], "scenario.yaml")
    elif any("#" in raw for raw in doc["config_files"]):
        # ``file#N`` takes only document N, as when a task applies one snippet of a file.
        texts = []
        for raw in doc["config_files"]:
            name, _, index = raw.partition("#")
            text = _resolve(name).read_text()
            if index:
                text = yaml.safe_dump(list(yaml.safe_load_all(text))[int(index)])
            texts.append(text)
        loaded = load_text("\n---\n".join(texts), "scenario.yaml")
    else:
        loaded = load_resources([_resolve(raw) for raw in doc["config_files"]])
    validate_resources(loaded.resources, loaded.diagnostics)
    errors = [str(d) for d in loaded.diagnostics.errors]
    assert not errors, errors
    return compile_snapshot(loaded.resources, node)


def _resolve(name: str) -> Path:
    if name.startswith("shared:"):
        return shared_path(name.removeprefix("shared:"))
    return REPO / name


@pytest.mark.parametrize(("file", "doc", "case"), _load_scenarios())
def test_routing_scenario(file: str, doc: dict[str, Any], case: dict[str, Any]) -> None:
    """The request is routed as the scenario file says (Istio semantics)."""
    snapshot = _snapshot(doc)
    req = case["request"]
    headers = tuple((k, str(v)) for k, v in (req.get("headers") or {}).items())
    result = explain(snapshot, Call(req["url"], req.get("method", "GET"), headers))
    expect = case["expect"]
    for key in (
        "route",
        "virtual_service",
        "rule_index",
        "status",
        "redirect",
        "action",
        "virtual_host",
    ):
        if key in expect:
            assert getattr(result, key) == expect[key], (key, result)
    if "no_route" in expect:
        assert result.route is None, result
    if "destinations" in expect:
        got = [
            {"host": d.host, "subset": d.subset, "port": d.port, "weight": d.weight}
            for d in result.destinations
        ]
        wanted = [
            {k: v for k, v in d.items() if k in ("host", "subset", "port", "weight")}
            for d in expect["destinations"]
        ]
        trimmed = [{k: g[k] for k in w} for g, w in zip(got, wanted, strict=False)]
        assert len(got) == len(wanted), got
        assert trimmed == wanted, got
    if "endpoints" in expect:
        eps = [(e["address"], e["priority"]) for d in result.destinations for e in d.endpoints]
        assert eps == [tuple(e) for e in expect["endpoints"]], eps
