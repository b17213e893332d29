"""Tests: an in-process gateway built from YAML text, demo-pod handles, and ../shared lookups."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from aiohttp import web

from gateway_core.server.app import Gateway
from gateway_core.settings import GatewaySettings

REPO = Path(__file__).resolve().parents[1]
# Reference material (Istio samples) lives in ``shared/`` beside the checkout, never inside it.
SHARED = REPO.parent / "shared"


def shared_path(relative: str) -> Path:
    """``../shared/<relative>`` beside the checkout; the test is skipped, with the path it
    looked for as the reason, where it is absent."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (reference material lives in ../shared beside the checkout)")
    return path


@dataclasses.dataclass
class PodHandle:
    runner: web.AppRunner
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class GatewayHarness:
    """A real gateway (listeners, pools, admin) in the test's event loop."""

    def __init__(self, workdir: Path, yaml_text: str, **settings: object) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_file = workdir / "config.yaml"
        self.config_file.write_text(yaml_text)
        base = GatewaySettings(
            tier=str(settings.pop("tier", "tier2")),
            config_paths=(str(self.config_file),),
            admin_address=("127.0.0.1", 0),
            bind_address="127.0.0.1",
            access_log="off",
            # Tests call POST /reload and /drain from loopback (admin auth has its own tests).
            admin_allow_unauthenticated_loopback=True,
            watch_interval=0.1,
            drain_propagation=0.0,
            drain_deadline=2.0,
            rng_seed=1,
        )
        self.settings = dataclasses.replace(base, **settings)  # type: ignore[arg-type]
        self.gateway = Gateway(self.settings)

    async def start(self) -> None:
        """Start the gateway; one that fails to start (a refused configuration, a port taken)
        is closed before the test fails, as ``serve`` closes it: a half-started gateway left
        open (its admin server, its clusters) kept uvloop's ``loop.close()`` from returning,
        and the whole run hung after the failure."""
        try:
            ok = await self.gateway.start()
        except BaseException:
            await self.gateway.close()
            raise
        if not ok:
            await self.gateway.close()
        assert ok, "gateway refused its configuration (or could not bind its listeners)"

    def write_config(self, yaml_text: str) -> None:
        self.config_file.write_text(yaml_text)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.gateway.admin_port}"

    async def close(self) -> None:
        await self.gateway.close()


def needs_python_sources(*targets: object) -> None:
    """Skip when a module or class that the test patches or subclasses runs compiled: mypyc's
    classes and functions cannot be replaced or subclassed from Python. ``.ci/run`` runs the
    whole suite on the Python sources too (``GATEWAY_PURE_PYTHON=1``), where it runs."""
    import sys

    for target in targets:
        module = target if hasattr(target, "__file__") else sys.modules[target.__module__]  # type: ignore[attr-defined]
        if not str(getattr(module, "__file__", "")).endswith(".py"):
            pytest.skip(
                f"{module.__name__} runs compiled (mypyc) and cannot be patched from Python; "
                "the pure-Python run (GATEWAY_PURE_PYTHON=1) covers this test"
            )
