"""Control path test helpers: build small Istio YAML documents, validate them, and compare the
diagnostics with an exact expected list of (severity, field path, message substring)."""

from __future__ import annotations

import textwrap

from gateway_core.config.diagnostics import Diagnostic, Diagnostics
from gateway_core.config.loader import load_text
from gateway_core.config.validation import validate_resources

Expected = tuple[str, str, str]
"""(severity, field path, substring of the message)."""

ERROR = "error"
WARNING = "warning"


def doc(
    kind: str,
    spec: str,
    *,
    name: str = "r",
    namespace: str = "default",
    api: str = "networking.istio.io/v1",
) -> str:
    """One YAML document; ``spec`` is block YAML written at column 0."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ")
    return (
        f"apiVersion: {api}\nkind: {kind}\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}\n"
    )


def vs(*rules: str, hosts: str = "[example.com]", extra: str = "", name: str = "vs") -> str:
    """A VirtualService whose ``http`` rules are given as one-line flow mappings."""
    http = "".join(f"- {rule}\n" for rule in rules)
    spec = f"hosts: {hosts}\n" + (f"http:\n{http}" if rules else "") + extra
    return doc("VirtualService", spec, name=name)


def join(*docs: str) -> str:
    return "---\n".join(docs)


def validate_text(text: str) -> Diagnostics:
    """Load ``text`` (which must be structurally valid) and run semantic validation on it."""
    loaded = load_text(text, name="case.yaml")
    assert not loaded.diagnostics.errors, [str(d) for d in loaded.diagnostics.errors]
    diags = Diagnostics()
    validate_resources(loaded.resources, diags)
    return diags


def assert_diagnostics(diags: Diagnostics, expected: list[Expected]) -> None:
    """Every expected diagnostic is present (severity and path exact) and nothing else is."""
    remaining: list[Diagnostic] = list(diags)
    missing: list[Expected] = []
    for severity, path, text in expected:
        for diag in remaining:
            if (
                diag.severity.value == severity
                and (diag.path or "") == path
                and text in diag.message
            ):
                remaining.remove(diag)
                break
        else:
            missing.append((severity, path, text))
    unexpected = [(d.severity.value, d.path, d.message) for d in remaining]
    assert (missing, unexpected) == ([], []), f"missing: {missing}\nunexpected: {unexpected}"
