"""Control path: load → validate → compile, the one entry point the CLI and reloads use."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from gateway_core.compiler import compile_snapshot
from gateway_core.config.diagnostics import ConfigError, Diagnostics
from gateway_core.config.loader import load_resources
from gateway_core.config.resources import Resources
from gateway_core.config.validation import validate_resources
from gateway_core.snapshot import NodeInfo, Snapshot


@dataclass(frozen=True, slots=True)
class BuildResult:
    snapshot: Snapshot | None
    diagnostics: Diagnostics
    resources: Resources | None
    files: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.snapshot is not None


def build_snapshot(paths: Sequence[str | os.PathLike[str]], node: NodeInfo) -> BuildResult:
    """Never raises for bad configuration: a rejected config has ``snapshot=None`` and errors."""
    loaded = load_resources(paths)
    diags = loaded.diagnostics
    if not loaded.files and diags.ok:
        diags.error("no configuration files found in " + ", ".join(str(p) for p in paths))
    validate_resources(loaded.resources, diags)
    if not diags.ok:
        return BuildResult(None, diags, loaded.resources, loaded.files)
    try:
        snapshot = compile_snapshot(loaded.resources, node, diags)
    except ConfigError:
        return BuildResult(None, diags, loaded.resources, loaded.files)
    return BuildResult(snapshot, diags, loaded.resources, loaded.files)
