"""Control path: loading Istio YAML files and directories into typed resources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway_core.config.loader import load_resources, load_text

GATEWAY = """
apiVersion: networking.istio.io/{version}
kind: Gateway
metadata: {{name: gw{n}}}
spec:
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
"""


@pytest.mark.parametrize("version", ["v1", "v1beta1", "v1alpha3"])
def test_every_istio_api_version_loads(version: str) -> None:
    """networking.istio.io v1, v1beta1 and v1alpha3 are all accepted."""
    result = load_text(GATEWAY.format(version=version, n=1))
    assert result.diagnostics.ok
    assert [g.name for g in result.resources.gateways] == ["gw1"]


def test_unknown_version_is_an_error_with_location() -> None:
    """An apiVersion this gateway does not read is reported at its path."""
    result = load_text(GATEWAY.format(version="v2", n=1), "gw.yaml")
    [err] = result.diagnostics.errors
    assert str(err).startswith("gw.yaml:0: Gateway/default/gw1: apiVersion: unsupported apiVersion")


def test_namespace_defaults_to_default() -> None:
    """metadata.namespace defaults to ``default``."""
    result = load_text(GATEWAY.format(version="v1", n=1))
    assert result.resources.gateways[0].namespace == "default"


def test_multi_document_files_keep_document_indexes() -> None:
    """Each document keeps its 0-based index within the file, for error locations."""
    text = GATEWAY.format(version="v1", n=1) + "---\n" + GATEWAY.format(version="v1", n=2)
    result = load_text(text, "two.yaml")
    assert [(g.name, g.origin.index) for g in result.resources.gateways] == [("gw1", 0), ("gw2", 1)]


def test_all_errors_are_reported_with_field_paths() -> None:
    """Unknown fields and wrong types are all reported, each with its field path."""
    text = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [a.example.com]
  http:
  - route:
    - destination: {host: a}
      weight: "ten"
    retriez: {attempts: 3}
"""
    result = load_text(text, "vs.yaml")
    rendered = sorted(str(d) for d in result.diagnostics.errors)
    assert rendered == [
        "vs.yaml:0: VirtualService/default/vs: spec.http[0].retriez: unknown field",
        "vs.yaml:0: VirtualService/default/vs: spec.http[0].route[0].weight: "
        "Input should be a valid integer",
    ]


def test_yaml_syntax_error_names_the_line() -> None:
    """A YAML syntax error carries its line and column."""
    result = load_text("kind: Gateway\n  bad: [", "broken.yaml")
    [err] = result.diagnostics.errors
    assert "broken.yaml:0: invalid YAML (line 2" in str(err)


def test_other_kinds_are_ignored_with_a_warning() -> None:
    """Kubernetes objects next to the Istio YAML are skipped, not fatal."""
    result = load_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    assert result.diagnostics.ok
    assert "is not a kind this gateway reads" in str(result.diagnostics.warnings[0])


def test_duplicate_resources_are_rejected() -> None:
    """The same kind/namespace/name twice is an error pointing at the first definition."""
    text = GATEWAY.format(version="v1", n=1) + "---\n" + GATEWAY.format(version="v1", n=1)
    [err] = load_text(text, "dup.yaml").diagnostics.errors
    assert "duplicate resource (first defined at dup.yaml:0)" in str(err)


def test_directories_are_read_recursively_skipping_hidden(tmp_path: Path) -> None:
    """Directories load every YAML file in name order; hidden entries (``..data``) are skipped."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a.yaml").write_text(GATEWAY.format(version="v1", n=1))
    (tmp_path / "b" / "c.yml").write_text(GATEWAY.format(version="v1", n=2))
    (tmp_path / "notes.txt").write_text("not config")
    hidden = tmp_path / "..2024_01_01"
    hidden.mkdir()
    (hidden / "a.yaml").write_text(GATEWAY.format(version="v1", n=1))
    os.symlink(hidden.name, tmp_path / "..data")
    result = load_resources([tmp_path])
    assert result.diagnostics.ok, [str(d) for d in result.diagnostics]
    assert [g.name for g in result.resources.gateways] == ["gw1", "gw2"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    """A config path that does not exist is reported."""
    result = load_resources([tmp_path / "nope"])
    assert "no such file or directory" in str(result.diagnostics.errors[0])


def test_durations_accept_istio_forms() -> None:
    """Durations read Istio's forms: 1s, 0.5s, 500ms, 3m, 1h30m."""
    from gateway_core.config._base import parse_duration

    assert [parse_duration(v) for v in ("1s", "0.5s", "500ms", "3m", "1h30m")] == [
        1.0,
        0.5,
        0.5,
        180.0,
        5400.0,
    ]
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("10")
