"""End to end: the README's seed-004 flow (request authentication at the edge, claim routing at
Tier-2), its four curl lines run verbatim with bash against a running lab, and the gateways'
view of the lab issuer's keys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lab.labkit import RunningLab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
AUTHZ_FOLDER = ROOT / "deploy" / "lab" / "tier1-authz"


def readme_flow() -> list[str]:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    flow = [line for line in lines if line.startswith("curl ") and "/secure/hello" in line]
    assert len(flow) == 4, flow
    return flow


def test_readme_seed_004_flow_runs_as_printed(lab: RunningLab, tmp_path: Path) -> None:
    """No token → 403 on the protected path (with AuthorizationPolicy), a bad token → 401, a
    good token → 200 from v1, a token with ``groups: [admins]`` → v2."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / ".lab").symlink_to(lab.workdir)
    lab.wait_healthy()
    outputs = []
    for line in readme_flow():
        result = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{line}: {result.stderr}\n{lab.diagnostics()}"
        outputs.append(result.stdout)
    no_token, bad, good, admin = outputs
    # Step 1: the AuthorizationPolicy in deploy/lab/tier1-authz (Tier-1 loads that folder)
    # denies a request without a principal; RequestAuthentication alone would let it pass.
    assert AUTHZ_FOLDER.resolve() in [p.resolve() for p in lab.topology.tier1.config]
    assert no_token.strip() == "403", no_token
    assert bad.endswith(" 401\n"), bad
    assert bad.startswith("Jwt is not in the form of Header.Payload.Signature"), bad
    assert good.startswith("Hello version: v1"), good
    assert admin.startswith("Hello version: v2"), admin


def test_gateways_hold_the_lab_issuer_keys(lab: RunningLab) -> None:
    """Tier-1 fetched the JWKS the lab serves, with no failure, and counted the tokens."""
    dump = lab.admin("/config_dump")
    (state,) = dump["jwks"]
    assert state["uri"] == "http://127.0.0.1:15999/jwks.json"
    assert state["fetches_ok"] >= 1 and state["fetches_failed"] == 0
    assert [k["algorithms"] for k in state["keys"]] == [["ES256"]]
    (jwt,) = [f for f in dump["gateway_filters"] if f["kind"] == "JwtAuthnSpec"]
    rules = jwt["rules"]
    assert rules[0]["issuer"] == "https://issuer.gateway-lab.local"
    assert rules[0]["forward_original_token"] is True
