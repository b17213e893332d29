"""Shared: which build of the request path a process imports: mypyc-compiled or Python.

Imported by ``gateway_core/__init__.py`` before any request-path module: with
``GATEWAY_PURE_PYTHON=1``, or when a compiled module is missing or older than its source (edited
since the last build), ``SourceOnlyFinder`` makes ``gateway_core`` modules load from their ``.py``
sources. ``native.py`` builds, cleans and reports.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "gateway_core.observability.access_log",
    "gateway_core.proxy.client_conn",
    "gateway_core.proxy.downstream",
    "gateway_core.proxy.exchange",
    "gateway_core.proxy.exchange_state",
    "gateway_core.proxy.filters",
    "gateway_core.proxy.headers",
    "gateway_core.proxy.http1_wire",
    "gateway_core.proxy.local_reply",
    "gateway_core.proxy.messages",
    "gateway_core.proxy.normalize",
    "gateway_core.proxy.request_checks",
    "gateway_core.proxy.retry",
    "gateway_core.proxy.targets",
    "gateway_core.proxy.upstream_conn",
    "gateway_core.proxy.upstream_request",
    "gateway_core.routing.matchers",
    "gateway_core.routing.request",
    "gateway_core.routing.route_table",
    "gateway_core.upstream.host",
    "gateway_core.upstream.lb.least_request",
    "gateway_core.upstream.lb.round_robin",
    "gateway_core.upstream.mux_pool",
    "gateway_core.upstream.pool",
    "gateway_core.upstream.pools",
    "gateway_core.upstream.resources",
    "gateway_core.utils.id_batch",
    "gateway_core.utils.memo",
)
"""Compiled together as one group (``gateway_core.native__mypyc`` holds their shared code)."""

GROUP = "gateway_core.native"
PURE_ENV = "GATEWAY_PURE_PYTHON"
SKIP_ENV = "GATEWAY_NO_MYPYC"


ROOT = Path(__file__).resolve().parents[2]


class SourceOnlyFinder(importlib.abc.MetaPathFinder):
    """Finds the submodules of one package (``gateway_core``) as ``.py`` sources only,
    ignoring compiled extensions beside them."""

    def __init__(self, package: str = "gateway_core") -> None:
        self.prefix = package + "."

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(self.prefix) or path is None:
            return None
        loaders = [(importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)]
        for entry in path:
            spec = importlib.machinery.FileFinder(entry, *loaders).find_spec(fullname, target)
            if spec is not None:
                return spec
        return None


def install_pure_python_finder() -> None:
    if not any(isinstance(f, SourceOnlyFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SourceOnlyFinder())


def built_files(name: str, root: Path) -> tuple[Path, list[Path]]:
    parts = name.split(".")
    source = root.joinpath(*parts[:-1], parts[-1] + ".py")
    return source, sorted(source.parent.glob(parts[-1] + ".*.so"))


def stray_builds(root: Path = ROOT) -> list[Path]:
    """Extensions under ``gateway_core`` of modules that are no longer in ``MODULES`` (a build
    made from another revision): Python would import them instead of their sources."""
    package = root / "gateway_core"
    if not package.is_dir():
        return []
    expected = {f"{GROUP}__mypyc", *MODULES}
    strays = []
    for built in package.rglob("*.so"):
        module = ".".join((*built.relative_to(root).parent.parts, built.name.split(".", 1)[0]))
        if module not in expected:
            strays.append(built)
    return sorted(strays)


def stale(root: Path = ROOT) -> bool:
    """True when compiled modules exist but some are missing or older than their source (an
    edit since the last build), or when extensions of modules outside ``MODULES`` lie beside
    their sources: the process must not run them."""
    if stray_builds(root):
        return True
    found = False
    newest_source = 0.0
    oldest_build = float("inf")
    complete = True
    for name in MODULES:
        source, builds = built_files(name, root)
        if not builds:
            complete = False
            continue
        found = True
        newest_source = max(newest_source, source.stat().st_mtime)
        oldest_build = min(oldest_build, *(b.stat().st_mtime for b in builds))
    return found and (not complete or newest_source > oldest_build)
