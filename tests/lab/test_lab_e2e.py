"""End to end: ``gateway-lab up`` as a newcomer runs it, then the curl commands it prints.

Runs in the default test run (the ``lab`` marker only documents that it is slow). Every curl
command is taken from the lab's own output and run with the real ``curl`` binary.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.lab.labkit import RunningLab

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed"),
]

ROOT = Path(__file__).resolve().parents[2]
HOST = "bookinfo.example.com"
DETAILS_DOWN = "Sorry, product details are currently unavailable for this book."
REVIEWS_DOWN = "Sorry, product reviews are currently unavailable for this book."


def run(lab: RunningLab, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run a printed curl command; a failed status carries the lab's diagnostics."""
    argv = [*shlex.split(command), *extra]
    assert argv[0] == "curl"
    lab.wait_healthy()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{command}: {result.stderr}\n{lab.diagnostics()}"
    return result


def printed(lab: RunningLab, *needles: str) -> str:
    """The one printed curl command containing every needle."""
    found = [c for c in lab.curl_commands() if all(n in c for n in needles)]
    assert len(found) == 1, f"expected one command with {needles}, got {found}"
    return found[0]


def test_lab_prints_the_issue_curl_command(lab: RunningLab) -> None:
    """The printed commands include the exact seed-000 style command for cluster-1."""
    expected = (
        "curl -s http://bookinfo.example.com:8080/productpage "
        "--resolve bookinfo.example.com:8080:127.0.0.1 -H 'X-CLUSTER-SELECTOR: cluster-1'"
    )
    assert expected in lab.curl_commands()
    assert re.search(r"✓ tier1-gateway\s+127\.0\.0\.1 :8080 :8443", lab.text())


def test_cluster_1_serves_only_productpage(lab: RunningLab) -> None:
    """cluster-1's page is served there and shows details and reviews unavailable."""
    result = run(lab, printed(lab, "/productpage", "X-CLUSTER-SELECTOR: cluster-1"))
    assert "productpage served by cluster cluster-1" in result.stdout, lab.diagnostics()
    assert DETAILS_DOWN in result.stdout
    assert REVIEWS_DOWN in result.stdout


@pytest.mark.parametrize("cluster", ["cluster-2", "cluster-3"])
def test_full_clusters_serve_details_and_reviews(lab: RunningLab, cluster: str) -> None:
    """cluster-2 and cluster-3 serve the whole page, every part from that cluster."""
    result = run(lab, printed(lab, "http://", "/productpage", f"X-CLUSTER-SELECTOR: {cluster}"))
    page = result.stdout
    assert f"productpage served by cluster {cluster}" in page, lab.diagnostics()
    assert "Book Details" in page and "Book Reviews" in page
    assert DETAILS_DOWN not in page and REVIEWS_DOWN not in page
    assert page.count(f"served by cluster {cluster},") == 3


def test_no_header_reaches_one_of_the_clusters(lab: RunningLab) -> None:
    """Without the header, Tier-1's weighted route serves the page from some cluster."""
    command = next(c for c in lab.curl_commands() if "/productpage" in c and " -H " not in c)
    served = set()
    for _ in range(10):
        result = run(lab, command)
        found = re.search(r"productpage served by cluster (cluster-\d)", result.stdout)
        assert found is not None, result.stdout[:500]
        served.add(found.group(1))
    assert served <= {"cluster-1", "cluster-2", "cluster-3"}


def test_https_through_tier1_uses_the_lab_ca(lab: RunningLab) -> None:
    """HTTPS at Tier-1 verifies with --cacert; issuer is the lab CA, SAN has the host."""
    command = printed(lab, "https://", "--cacert")
    assert str(lab.workdir / "certs" / "ca.crt") in command
    result = run(lab, command, "-v")
    assert "productpage served by cluster cluster-2" in result.stdout
    assert "issuer: O=Gateway Lab; CN=Gateway Lab Root CA" in result.stderr
    assert f'subjectAltName: host "{HOST}" matched' in result.stderr
    cert = _served_certificate(lab.workdir / "certs" / "ca.crt", "127.0.0.1", 8443)
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert issuer == "Gateway Lab Root CA"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert HOST in san.get_values_for_type(x509.DNSName)


def _served_certificate(
    ca: Path, address: str, port: int, servername: str = HOST
) -> x509.Certificate:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl binary is not installed")
    argv = ["openssl", "s_client", "-connect", f"{address}:{port}", "-servername", servername]
    result = subprocess.run(
        [*argv, "-CAfile", str(ca), "-verify_return_error"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout + result.stderr
    pem = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", result.stdout, re.S)
    assert pem is not None
    return x509.load_pem_x509_certificate(pem.group(0).encode())


def test_http_at_a_tier2_redirects_to_https(lab: RunningLab) -> None:
    """Plain HTTP straight at cluster-1's Tier-2 answers 301 to the HTTPS URL."""
    result = run(lab, printed(lab, "curl -si", "127.0.1.1"))
    status_line = result.stdout.splitlines()[0]
    assert status_line.startswith("HTTP/1.1 301"), status_line
    assert re.search(
        r"^location: https://bookinfo\.example\.com:8443/productpage\r?$",
        result.stdout,
        re.I | re.M,
    )


def test_tier2_https_requires_the_tier1_client_certificate(lab: RunningLab) -> None:
    """Tier-2's mutual TLS refuses a client without Tier-1's certificate and accepts it."""
    certs = lab.workdir / "certs"
    base = [
        "-s", "-o", os.devnull, "-w", "%{http_code}",
        f"https://{HOST}:8443/productpage", "--resolve", f"{HOST}:8443:127.0.1.1",
        "--cacert", str(certs / "ca.crt"),
    ]  # fmt: skip
    refused = subprocess.run(["curl", *base], capture_output=True, text=True, check=False)
    assert refused.returncode != 0
    assert refused.stdout == "000"
    client = certs / "tier1-client"
    accepted = subprocess.run(
        ["curl", *base, "--cert", str(client / "tls.crt"), "--key", str(client / "tls.key")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (accepted.returncode, accepted.stdout) == (0, "200")


def test_validate_rejects_a_broken_copy_with_the_right_path(tmp_path: Path) -> None:
    """tier2-gateway validate exits 1 and names file:index: kind/ns/name: field.path."""
    shutil.copytree(ROOT / "deploy" / "lab" / "tier2", tmp_path / "tier2")
    shutil.copytree(ROOT / "deploy" / "lab" / "cluster-2", tmp_path / "cluster-2")
    vs = tmp_path / "tier2" / "virtualservice.yaml"
    text = vs.read_text()
    hello = "        host: helloworld\n        port:\n          number: 5000\n"
    assert hello in text
    broken = hello.replace("helloworld\n", "helloworld\n        subset: v3\n")
    vs.write_text(text.replace(hello, broken))
    script = Path(sys.executable).parent / "tier2-gateway"
    tool = [str(script)] if script.exists() else [sys.executable, "-m", "tier2_gateway"]
    result = subprocess.run(
        [*tool, "validate", "--config", str(tmp_path / "tier2"), str(tmp_path / "cluster-2")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{vs}:0: VirtualService/bookinfo/bookinfo: spec.http[2].route[0].destination.subset: "
        "subset v3 not found in DestinationRule bookinfo/helloworld for host "
        "helloworld.bookinfo.svc.cluster.local"
    ) in result.stdout.splitlines()


def test_websocket_passes_through_both_tiers(lab: RunningLab) -> None:
    """A WebSocket upgrade at Tier-1 reaches a cluster-2 pod over Tier-1 → Tier-2 mutual TLS."""
    import asyncio

    import aiohttp

    class _Resolve(aiohttp.abc.AbstractResolver):
        async def resolve(
            self, host: str, port: int = 0, family: int = 0
        ) -> list[dict[str, object]]:
            return [
                {"hostname": host, "host": "127.0.0.1", "port": port,
                 "family": 2, "proto": 0, "flags": 0}
            ]  # fmt: skip

        async def close(self) -> None:
            return None

    async def echo_twice() -> list[str]:
        connector = aiohttp.TCPConnector(resolver=_Resolve())
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.ws_connect(
                f"http://{HOST}:8080/ws", headers={"X-CLUSTER-SELECTOR": "cluster-2"}
            ) as ws,
        ):
            out = []
            for text in ("hello", "through two tiers"):
                await ws.send_str(text)
                msg = await ws.receive(timeout=10)
                out.append(str(msg.data))
            return out

    lab.wait_healthy()
    assert asyncio.run(echo_twice()) == ["hello", "through two tiers"]


@pytest.mark.parametrize(("cluster", "count"), [("cluster-2", 3), ("cluster-3", 2)])
def test_grpc_pods_answer_the_lab_client(lab: RunningLab, cluster: str, count: int) -> None:
    """Each gRPC demo pod answers `gateway-lab grpc call` (bidi) straight, naming itself.
    Through the gateways: tests/lab/test_grpc_through_gateway.py."""
    pods = [p for p in lab.topology.pod_instances(cluster) if p.role == "grpc"]
    assert len(pods) == count
    for pod in pods:
        target = f"{pod.host}:{pod.port}"
        result = lab.cli("grpc", "call", "--method", "bidi", "--count", "2", target)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(f"from {pod.name} ({cluster})") == 2, result.stdout


def test_tier1_serves_the_grpc_host_its_own_certificate(lab: RunningLab) -> None:
    """SNI grpc.example.com at Tier-1's 8443 gets grpc-credential, verified by the lab CA."""
    cert = _served_certificate(
        lab.workdir / "certs" / "ca.crt", "127.0.0.1", 8443, servername="grpc.example.com"
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["grpc.example.com"]


def test_readme_http2_and_grpc_commands_run_as_printed(lab: RunningLab, tmp_path: Path) -> None:
    """The README's `curl --http2` lines and its gRPC client line, run verbatim with bash from
    a folder laid out like the checkout (``.venv``, and ``.lab`` = this lab's workdir): HTTP/2
    at Tier-1 (ALPN) and at a Tier-2 (h2c), and one channel's calls spread over all three
    cluster-2 gRPC pods."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / ".lab").symlink_to(lab.workdir)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = [
        line
        for line in readme.splitlines()
        if line.startswith(("curl -sI --http2", ".venv/bin/gateway-lab grpc call"))
    ]
    assert len(lines) == 3, lines
    lab.wait_healthy()
    outputs = []
    for line in lines:
        result = subprocess.run(
            ["bash", "-c", line],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{line}: {result.stderr}\n{lab.diagnostics()}"
        outputs.append(result.stdout)
    assert outputs[0].startswith("HTTP/2 200"), outputs[0]
    assert outputs[1].startswith("HTTP/2 301"), outputs[1]
    pods = [p.name for p in lab.topology.pod_instances("cluster-2") if p.role == "grpc"]
    assert len(pods) == 3
    for pod in pods:
        assert f"from {pod} (cluster-2)" in outputs[2], outputs[2]


def test_status_kill_and_start_through_the_control_api(lab: RunningLab) -> None:
    """status lists every process; kill stops one, start brings it back ready."""
    status = lab.cli("status")
    assert status.returncode == 0, status.stderr
    for name in ("dns", "pods-cluster-1", "tier2-cluster-3", "tier1-gateway"):
        assert re.search(rf"^{name}\s+\d+\s+ready", status.stdout, re.M), status.stdout
    killed = lab.cli("kill", "tier2-cluster-3")
    assert killed.returncode == 0, killed.stderr
    down = {p["name"]: p for p in lab.status()["processes"]}["tier2-cluster-3"]
    assert (down["alive"], down["exit_code"]) == (False, -signal.SIGKILL)
    started = lab.cli("start", "tier2-cluster-3")
    assert started.returncode == 0, started.stderr
    again = {p["name"]: p for p in lab.status()["processes"]}["tier2-cluster-3"]
    assert (again["alive"], again["ready"], again["starts"]) == (True, True, 2)
    lab.child_pids.append(again["pid"])


def test_a_child_dying_is_reported_and_the_rest_keeps_running(lab: RunningLab) -> None:
    """A pod group killed from outside is reported; every other process stays ready."""
    pods = {p["name"]: p for p in lab.status()["processes"]}["pods-cluster-3"]
    os.kill(pods["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while "pods-cluster-3" not in _unexpected(lab) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "pods-cluster-3" in _unexpected(lab)
    others = [p for p in lab.status()["processes"] if p["name"] != "pods-cluster-3"]
    assert all(p["ready"] for p in others)
    result = lab.cli("start", "pods-cluster-3")
    assert result.returncode == 0, result.stderr
    restarted = {p["name"]: p for p in lab.status()["processes"]}["pods-cluster-3"]
    lab.child_pids.append(restarted["pid"])


def _unexpected(lab: RunningLab) -> str:
    return " ".join(
        line for line in lab.text().splitlines() if "exited unexpectedly with signal 9" in line
    )


def test_sigint_stops_every_process(lab: RunningLab) -> None:
    """Ctrl-C (SIGINT to the lab) stops every child, and the lab exits 0."""
    pids = [p["pid"] for p in lab.status()["processes"]]
    assert lab.proc is not None
    lab.proc.send_signal(signal.SIGINT)
    assert lab.wait_stopped() == 0
    assert "✓ every lab process has stopped" in lab.text()
    lab.child_pids += pids
    assert lab.alive_children() == []
