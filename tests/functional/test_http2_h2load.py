"""Functional: h2load (nghttp2's load generator, Debian ``nghttp2-client``) through a real
gateway on 127.0.0.1 to an echo pod: h2c with prior knowledge, and TLS with ALPN h2.

2 000 requests on 4 connections with 10 streams each: every one must succeed (h2load's own
count of 2xx answers) and reach the pod (its request counter).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway_lab.demo_pod import STATE
from tests.conftest import free_port
from tests.functional.support import config, lab_certs

H2LOAD = shutil.which("h2load")
pytestmark = pytest.mark.skipif(
    H2LOAD is None, reason="h2load is not installed (Debian package nghttp2-client)"
)
REQUESTS = 2000
RULES = "  - route: [{destination: {host: echo.local}}]"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab_certs(tmp_path_factory.mktemp("pki"))


async def _h2load(*args: str) -> str:
    assert H2LOAD is not None
    proc = await asyncio.create_subprocess_exec(
        H2LOAD, "-n", str(REQUESTS), "-c", "4", "-m", "10", "-N", "30s", *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 180)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, text
    return text


def _counts(text: str, line: str) -> dict[str, int]:
    """``{"succeeded": 2000, "failed": 0, ...}`` from h2load's ``<line>: 2000 total, ...``."""
    found = re.search(rf"^{line}: (.*)$", text, re.MULTILINE)
    assert found is not None, text
    return {name: int(n) for n, name in re.findall(r"(\d+) (\w+)", found.group(1))}


def _check(text: str, protocol: str) -> str:
    """All requests answered 2xx over ``protocol``; h2load's throughput line."""
    assert f"Application protocol: {protocol}" in text, text
    requests = _counts(text, "requests")
    assert requests["total"] == requests["done"] == requests["succeeded"] == REQUESTS, text
    assert (requests["failed"], requests["errored"], requests["timeout"]) == (0, 0, 0), text
    assert _counts(text, "status codes") == {"2xx": REQUESTS, "3xx": 0, "4xx": 0, "5xx": 0}
    finished = re.search(r"^finished in .*$", text, re.MULTILINE)
    assert finished is not None, text
    return finished.group(0)


async def test_h2load_h2c_prior_knowledge(
    gateway: Callable[..., Any], pods: Callable[..., Any], measured: Callable[[str], None]
) -> None:
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    await gateway(config(port, RULES, {"echo.local": [pod.port]}))
    text = await _h2load(f"http://127.0.0.1:{port}/echo")
    measured("h2c: " + _check(text, "h2c"))
    assert pod.runner.app[STATE].requests == REQUESTS


async def test_h2load_tls_alpn_h2(
    gateway: Callable[..., Any],
    pods: Callable[..., Any],
    pki: Path,
    measured: Callable[[str], None],
) -> None:
    """The URI's host is the SNI and ``:authority``; ``--connect-to`` sends it to loopback."""
    pod = await pods("echo", cluster="c1", pod="p1")
    port = free_port()
    yaml = config(port, RULES, {"echo.local": [pod.port]}, credential="bookinfo-credential")
    await gateway(yaml, cert_dir=str(pki))
    text = await _h2load(
        f"--connect-to=127.0.0.1:{port}", f"https://bookinfo.example.com:{port}/echo"
    )
    measured("TLS: " + _check(text, "h2"))
    assert pod.runner.app[STATE].requests == REQUESTS
