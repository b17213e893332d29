"""CLI contract of ``tier2-gateway`` run as a real subprocess (``python -m tier2_gateway``)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.functional.support import config

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "deploy" / "lab"


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tier2_gateway", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def test_validate_accepts_the_lab_config() -> None:
    """``validate`` exits 0 for a valid configuration and says what it read."""
    result = run_cli("validate", "--config", str(LAB / "tier2"), str(LAB / "cluster-2"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration is valid" in result.stdout


def test_validate_reports_every_error_with_its_location(tmp_path: Path) -> None:
    """``validate`` exits 1 and prints each problem as file:doc: ref: path: message."""
    broken = tmp_path / "broken.yaml"
    text = (LAB / "tier2" / "virtualservice.yaml").read_text()
    text = text.replace("exact: /productpage", "exactly: /productpage")
    text = text.replace("number: 5000", "number: -5")
    broken.write_text(text)
    result = run_cli("validate", "--config", str(broken), str(LAB / "tier2" / "gateway.yaml"))
    assert result.returncode == 1
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(str(broken))]
    ref = "VirtualService/bookinfo/bookinfo"
    assert f"{broken}:0: {ref}: spec.http[0].match[0].uri.exactly: unknown field" in lines
    assert any("spec.http[2].route[0].destination.port.number" in ln for ln in lines), lines
    assert "configuration rejected" in result.stderr


def test_explain_shows_rule_and_destinations() -> None:
    """``explain`` prints the gateway server, VirtualService, rule index and destinations."""
    result = run_cli(
        "explain",
        "--config",
        str(LAB / "tier2"),
        str(LAB / "cluster-2"),
        "--locality",
        "us-west1/us-west1-b",
        "https://bookinfo.example.com:8443/user/42",
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "virtual service: VirtualService/bookinfo/bookinfo" in out
    assert "rule:            http[1] (bookinfo/bookinfo/http[1].user)" in out
    assert "user.bookinfo.svc.cluster.local:9080" in out
    assert "endpoint user.cluster-2.lab:9080 priority=0" in out
    assert "endpoint user.cluster-1.lab:9080 priority=1" in out


def test_explain_names_the_authorization_policy_and_rule() -> None:
    """With docs/examples/authorization-policies.yaml and the selector's label: an allowed
    request names the ALLOW rule and routes; a denied one names the DENY rule, exit 1;
    ``--source-ip`` feeds ``remoteIpBlocks`` (no trusted hops)."""
    base = (
        "explain",
        "--config",
        str(LAB / "tier2"),
        str(LAB / "cluster-2"),
        str(REPO / "docs" / "examples" / "authorization-policies.yaml"),
        "--label",
        "istio=ingressgateway",
    )
    allowed = run_cli(*base, "https://bookinfo.example.com:8443/productpage")
    assert allowed.returncode == 0, allowed.stderr
    assert (
        "authorization:   allowed by policy istio-system/bookinfo-readers rules[0]"
        in allowed.stdout
    )
    assert "rule:            http[0]" in allowed.stdout
    denied = run_cli(*base, "https://bookinfo.example.com:8443/admin/users")
    assert denied.returncode == 1
    assert (
        "authorization:   denied (403 RBAC: access denied) by policy istio-system/no-admin "
        "rules[0]" in denied.stdout
    )
    post = ("-X", "POST", "https://bookinfo.example.com:8443/productpage")
    outside = run_cli(*base, *post)
    assert "ALLOW policies apply and none matched" in outside.stdout
    inside = run_cli(*base, "--source-ip", "10.1.2.3", *post)
    assert "allowed by policy istio-system/bookinfo-readers rules[1]" in inside.stdout
    unlabelled = run_cli(*base[:-2], "https://bookinfo.example.com:8443/admin/users")
    assert "authorization:   no policy: allowed" in unlabelled.stdout


def test_explain_reports_no_route() -> None:
    """A request nothing matches is explained as 404 NR with exit 1."""
    result = run_cli(
        "explain", "--config", str(LAB / "tier2"), "http://bookinfo.example.com:8080/x"
    )
    # On the HTTP server everything is redirected (httpsRedirect), so this is a redirect...
    assert result.returncode == 0
    assert "redirect 301 -> https://bookinfo.example.com:8443/x" in result.stdout
    result = run_cli("explain", "--config", str(LAB / "tier2"), "https://other.example.com:8443/")
    assert result.returncode == 1
    assert "no virtual host" in result.stdout


def _write_gateway_config(tmp_path: Path, port: int) -> Path:
    config_file = tmp_path / "gw.yaml"
    rule = '  - directResponse: {status: 200, body: {string: "hello from the gateway"}}'
    config_file.write_text(config(port, rule, {}))
    return config_file


def _wait_ready(admin: int, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gateway did not become ready")


def test_run_is_the_default_and_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    """Without a subcommand the gateway runs; it serves, /ready flips to 503 on SIGTERM, exit 0."""
    port, admin = free_port(), free_port()
    config = _write_gateway_config(tmp_path, port)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tier2_gateway",
            "--config",
            str(config),
            "--admin-address",
            f"127.0.0.1:{admin}",
            "--bind-address",
            "127.0.0.1",
            "--access-log",
            "off",
            "--drain-propagation",
            "1",
            "--drain-deadline",
            "2",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(admin, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.read() == b"hello from the gateway"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=2)
        assert err.value.code == 503
        err.value.close()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_run_reports_a_port_in_use(tmp_path: Path) -> None:
    """A listener port already taken is a clear error and exit 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = _write_gateway_config(tmp_path, port)
        result = run_cli(
            "run",
            "--config",
            str(config),
            "--admin-address",
            f"127.0.0.1:{free_port()}",
            "--bind-address",
            "127.0.0.1",
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_run_refuses_an_invalid_config(tmp_path: Path) -> None:
    """An invalid configuration at start is printed and the process exits 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n"
    )
    result = run_cli("run", "--config", str(bad), "--admin-address", f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "spec.servers: required field is missing" in result.stderr
