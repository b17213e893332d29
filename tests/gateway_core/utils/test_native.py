"""Shared: the mypyc build of the request path (gateway_core/utils/native.py and
native_select.py): which build a process imports, stale builds ignored, the pure-Python
switch, and what preflight and /config_dump report."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from gateway_core.utils import native, native_select
from gateway_core.utils.native_select import SourceOnlyFinder, stale
from tests.conftest import free_port
from tests.functional.support import config
from tests.helpers import REPO, GatewayHarness

SUFFIX = ".cpython-311-x86_64-linux-gnu.so"


def _tree(root: Path, built: list[str], *, build_age: float = 0.0) -> None:
    """Sources for every hot module under ``root``; fake extensions for ``built``."""
    now = time.time()
    for name in native_select.MODULES:
        source = root.joinpath(*name.split(".")).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        os.utime(source, (now - 100, now - 100))
        if name in built:
            ext = source.with_name(source.stem + SUFFIX)
            ext.write_bytes(b"")
            os.utime(ext, (now - 100 + build_age, now - 100 + build_age))


def test_no_build_is_not_stale(tmp_path: Path) -> None:
    _tree(tmp_path, [])
    assert not stale(tmp_path)


def test_a_complete_build_newer_than_its_sources_is_current(tmp_path: Path) -> None:
    _tree(tmp_path, list(native_select.MODULES), build_age=10)
    assert not stale(tmp_path)


def test_a_source_edited_after_the_build_makes_it_stale(tmp_path: Path) -> None:
    _tree(tmp_path, list(native_select.MODULES), build_age=10)
    edited = tmp_path / "gateway_core" / "proxy" / "exchange.py"
    edited.write_text("# edited\n")
    assert stale(tmp_path)


def test_a_partial_build_is_stale(tmp_path: Path) -> None:
    _tree(tmp_path, list(native_select.MODULES[:3]), build_age=10)
    assert stale(tmp_path)


def test_an_extension_of_a_module_outside_the_list_makes_the_build_stale(tmp_path: Path) -> None:
    """A build from a revision that compiled more modules leaves their extensions behind:
    Python would import them instead of the sources, so the build is stale, and ``clean``
    (which every build starts with) removes them."""
    _tree(tmp_path, list(native_select.MODULES), build_age=10)
    assert not stale(tmp_path)
    stray = tmp_path / "gateway_core" / "proxy" / ("h2_downstream" + SUFFIX)
    stray.write_bytes(b"")
    assert native_select.stray_builds(tmp_path) == [stray]
    assert stale(tmp_path)
    assert native.clean(tmp_path) == len(native_select.MODULES) + 1
    assert not stray.exists() and not stale(tmp_path)


def test_the_source_only_finder_loads_py_beside_a_broken_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package whose module has a (broken) extension beside its source: the normal import
    takes the extension and fails; with the finder, the source is imported."""
    package = tmp_path / "fakepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text("WHERE = 'source'\n")
    (package / ("mod" + SUFFIX)).write_bytes(b"not an ELF file")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError):
        importlib.import_module("fakepkg.mod")
    sys.modules.pop("fakepkg.mod", None)
    finder = SourceOnlyFinder("fakepkg")
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    module = importlib.import_module("fakepkg.mod")
    assert module.WHERE == "source"
    assert module.__file__ is not None and module.__file__.endswith("mod.py")
    sys.modules.pop("fakepkg.mod", None)
    sys.modules.pop("fakepkg", None)


def _run(*args: str, pure: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(native_select.PURE_ENV, None)
    if pure:
        env[native_select.PURE_ENV] = "1"
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_pure_python_switch_imports_sources_and_says_so() -> None:
    """``GATEWAY_PURE_PYTHON=1``: every hot module comes from its source, and preflight says
    so; without it, preflight names the build this checkout has."""
    pure = _run("-m", "gateway_core.utils.preflight", pure=True)
    assert "request path runs as pure Python (GATEWAY_PURE_PYTHON=1)" in pure
    files = _run(
        "-c",
        "import importlib; from gateway_core.utils.native_select import MODULES; "
        "print(sorted({importlib.import_module(m).__file__.rsplit('.', 1)[1] for m in MODULES}))",
        pure=True,
    )
    assert files.strip() == "['py']"
    default = _run("-m", "gateway_core.utils.preflight", pure=False)
    status = _run("-m", "gateway_core.utils.native", "status", pure=False).strip()
    assert status.startswith("request path ") and status in default


async def test_config_dump_reports_the_build(tmp_path: Path) -> None:
    port = free_port()
    harness = GatewayHarness(
        tmp_path, config(port, "  - route: [{destination: {host: a.svc}}]", {"a.svc": [9]})
    )
    await harness.start()
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(harness.admin + "/config_dump") as resp,
        ):
            body = await resp.json()
    finally:
        await harness.close()
    assert body["runtime"] == native.status()
    assert body["runtime"]["build"] in {"mypyc", "python"}
