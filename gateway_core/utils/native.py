"""Shared: the request path compiled with mypyc, and which build a process runs.

The hot modules of the data path (``MODULES``) are plain, ``mypy --strict``-clean Python, so
mypyc compiles them unchanged into C extensions that sit beside their sources (Python imports
the extension first). ``make`` builds them as part of the ordinary install
(``python -m gateway_core.utils.native build``); where there is no C compiler, or with
``GATEWAY_NO_MYPYC=1``, the install goes on and the same modules run as Python.

``GATEWAY_PURE_PYTHON=1`` makes a process import the Python sources even where extensions exist
(``gateway_core/__init__.py`` installs ``SourceOnlyFinder``), so one install can be tested both
ways; CI does. ``preflight`` and ``/config_dump`` say which build runs (``status``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import sysconfig
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from gateway_core.utils.native_select import (
    GROUP,
    MODULES,
    PURE_ENV,
    ROOT,
    SKIP_ENV,
    built_files,
    stale,
    stray_builds,
)


def is_compiled(module: ModuleType) -> bool:
    return not (getattr(module, "__file__", None) or "").endswith(".py")


def status() -> dict[str, object]:
    """Which build this process runs: ``mypyc`` (every hot module compiled), ``python``, or
    ``mixed`` (a partial build: rebuild it)."""
    compiled = [name for name in MODULES if is_compiled(importlib.import_module(name))]
    build = "mypyc" if len(compiled) == len(MODULES) else "python" if not compiled else "mixed"
    return {
        "build": build,
        "compiled_modules": len(compiled),
        "hot_modules": len(MODULES),
        "pure_python_forced": os.environ.get(PURE_ENV) == "1",
    }


def describe() -> str:
    info = status()
    if stale() and not info["pure_python_forced"]:
        return "request path runs as pure Python (the compiled build is older than the sources)"
    if info["build"] == "mypyc":
        return f"request path compiled with mypyc ({info['compiled_modules']} modules)"
    reason = f" ({PURE_ENV}=1)" if info["pure_python_forced"] else ""
    if info["build"] == "mixed":
        return (
            f"request path partly compiled ({info['compiled_modules']} of {info['hot_modules']}"
            " modules): rebuild with `make`"
        )
    return f"request path runs as pure Python{reason}"


def _any_built(root: Path = ROOT) -> bool:
    return any(built_files(name, root)[1] for name in MODULES)


def clean(root: Path = ROOT) -> int:
    """Remove built extensions (the next import runs the sources); the count removed."""
    removed = 0
    for name in (*MODULES, f"{GROUP}__mypyc"):
        parent = root.joinpath(*name.split(".")[:-1])
        for built in parent.glob(name.rsplit(".", 1)[-1] + ".*.so"):
            built.unlink()
            removed += 1
    for built in stray_builds(root):  # left by a build with a different module list
        built.unlink()
        removed += 1
    return removed


def build(root: Path = ROOT) -> int:
    """Compile ``MODULES`` in place; 0 on success or on a skipped build (said why), else 1
    with the compiler's output (the install still works: the sources run)."""
    if os.environ.get(SKIP_ENV) == "1":
        print(f"native: {SKIP_ENV}=1, the request path stays pure Python")
        return 0
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        print(f"native: no C compiler ({compiler}); the request path stays pure Python")
        return 0
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as exc:
        print(f"native: mypyc is not installed ({exc}); the request path stays pure Python")
        return 0
    clean(root)
    paths = [str(Path(*name.split("."))) + ".py" for name in MODULES]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        setup(
            name="gateway-native",
            ext_modules=mypycify(paths, group_name=GROUP, opt_level="3"),
            script_args=["-q", "build_ext", "--inplace"],
        )
    except (Exception, SystemExit):
        traceback.print_exc()
        clean(root)
        print("native: compiling failed; the request path stays pure Python", file=sys.stderr)
        return 1
    finally:
        os.chdir(cwd)
    for name in MODULES:  # setuptools keeps the times of objects it did not rebuild
        for built in built_files(name, root)[1]:
            os.utime(built)
    print(f"native: compiled {len(MODULES)} request-path modules with mypyc")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "status"
    if command == "build":
        return build()
    if command == "ensure":  # build when there is no current build (``make`` runs this)
        if os.environ.get(PURE_ENV) == "1" or (_any_built() and not stale()):
            print(f"native: {describe()}")
            return 0
        build()
        return 0  # a failed build leaves the pure-Python modules, which work
    if command == "clean":
        print(f"native: removed {clean()} compiled module(s)")
        return 0
    if command == "status":
        print(describe())
        return 0
    print("usage: python -m gateway_core.utils.native [build|ensure|clean|status]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
