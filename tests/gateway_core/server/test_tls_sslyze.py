"""Tests: sslyze's Mozilla "intermediate" check passes against a TLS listener as ``run`` starts it.

The gateway runs through its CLI (``python -m tier2_gateway run``) with no ``OPENSSL_CONF`` and
no environment file. sslyze runs from its own virtualenv (``make .venv-sslyze/.installed``,
which ``make test`` builds), because it pins ``cryptography`` below the project's version. The
lab CA is given to sslyze, so the certificate checks run against the lab certificates too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.functional.support import lab_certs, tls_gateway_yaml
from tests.gateway_core.server.ops_testkit import REPO, GatewayProcess

SSLYZE_PYTHON = REPO / ".venv-sslyze" / "bin" / "python"


def _sslyze(port: int, ca_file: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"}
    return subprocess.run(
        [
            str(SSLYZE_PYTHON),
            "-m",
            "sslyze",
            "--mozilla_config=intermediate",
            "--certinfo_ca_file",
            str(ca_file),
            f"bookinfo.example.com:{port}{{127.0.0.1}}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


async def test_tls_listener_is_mozilla_intermediate_compliant(tmp_path: Path) -> None:
    """sslyze reports the listener compliant, offering X25519, secp256r1 and secp384r1 only."""
    if not SSLYZE_PYTHON.exists():
        pytest.skip("sslyze's virtualenv is missing: run `make .venv-sslyze/.installed`")
    certs = lab_certs(tmp_path / "certs")
    port = free_port()
    cfg = tmp_path / "gateway.yaml"
    cfg.write_text(tls_gateway_yaml(free_port(), port))
    gateway = GatewayProcess(
        "tier2",
        [cfg],
        free_port(),
        tmp_path / "gateway.log",
        "--bind-address",
        "127.0.0.1",
        "--cert-dir",
        str(certs),
    )
    try:
        await gateway.wait_ready()
        done = await asyncio.to_thread(_sslyze, port, certs / "ca.crt")
    finally:
        gateway.stop()
    report = done.stdout + done.stderr
    assert f"bookinfo.example.com:{port}: OK - Compliant." in report, report
    assert done.returncode == 0, report
    assert "Supported curves:                  X25519, secp256r1, secp384r1\n" in report, report
