"""Tests: what a worker process loads. The fork server imports ``gateway_core.server.worker``
and every worker starts as a copy of it, so each package that module pulls in costs every
worker its resident memory. The control path's packages stay out: the admin server (aiohttp),
DNS (dnspython), configuration files (YAML, the loader, validation), the configuration models
and the compiler (pydantic: workers receive compiled snapshots), JWT (PyJWT and cryptography,
until a rule needs them) and gRPC health checks (grpcio)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO

CONTROL_PATH_ONLY = (
    "aiohttp",
    "dns",
    "yaml",
    "jwt",
    "cryptography",
    "grpc",
    "opentelemetry",
    "pydantic",
    "pydantic_core",
    "gateway_core.compiler",
    "gateway_core.config.resources",
    "gateway_core.config.validation",
    "gateway_core.pipeline",
    "gateway_core.config.loader",
    "gateway_core.server.admin",
    "gateway_core.server.dashboard",
    "gateway_core.server.supervisor",
)


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.splitlines()[-1]))


def _loaded(modules: set[str], package: str) -> list[str]:
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


def test_the_worker_module_leaves_the_control_path_packages_out() -> None:
    modules = _modules_after("import gateway_core.server.worker")
    assert "gateway_core.server.app" in modules and "gateway_core.server.channel" in modules
    loaded = {p: _loaded(modules, p) for p in CONTROL_PATH_ONLY}
    assert not any(loaded.values()), {p: m[:3] for p, m in loaded.items() if m}


def test_the_packages_load_where_they_are_used() -> None:
    """The lazy imports still happen: parsing a key set loads PyJWT and cryptography, and
    loading configuration files loads the YAML loader."""
    modules = _modules_after(
        "from gateway_core.security.jwks import parse_jwks\n"
        "from gateway_core.pipeline import build_snapshot\n"
        'parse_jwks(\'{"keys": [{"kty": "OKP", "crv": "Ed25519", '
        '"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}\')'
    )
    assert _loaded(modules, "jwt") and _loaded(modules, "cryptography")
    assert _loaded(modules, "yaml") and "gateway_core.config.validation" in modules
