"""Tests for bench/floor.py: the minimal forwarder the benchmark measures as the floor."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench import configs, environment
from bench.h2_library import server_seconds
from bench.paths import FLOOR_KEYS, build_paths, select
from bench.procs import ProcessSet, http_get
from bench.stats import COMPARISONS
from bench.topology import PATH_KEYS, Pinning, Topology
from certs.generate import generate_lab_certs

NO_NGINX = not (shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin"))
NO_H2 = not (shutil.which("h2load") and shutil.which("curl"))


def test_the_floor_is_measured_on_request_and_compared_with_nginx() -> None:
    assert not set(FLOOR_KEYS) & set(select([], []))
    assert select(["floor"], []) == FLOOR_KEYS
    assert select([], ["b-floor"]) == ("b-floor",)
    pairs = {(ours, nginx) for ours, nginx, _, _ in COMPARISONS}
    assert ("b-floor", "b-nginx") in pairs
    assert ("h2-floor-1x100", "h2-nginx-1x100") in pairs
    assert "b-floor" not in PATH_KEYS


@pytest.mark.skipif(NO_NGINX, reason="nginx is not installed (apt-get install nginx-light)")
@pytest.mark.skipif(NO_H2, reason="h2load or curl missing (apt-get install nghttp2-client curl)")
def test_the_floor_forwards_http1_and_h2_to_the_pod(tmp_path: Path) -> None:
    """b-floor answers the pod's ``ok`` over HTTP/1.1 on several requests of one connection;
    h2-floor speaks h2 over TLS (ALPN) to curl and to h2load (build_paths checks 20 h2load
    requests end to end) and answers the pod's body."""
    tools, missing = environment.find_tools(need_taskset=False, need_h2load=True)
    assert tools is not None, missing
    generate_lab_certs(tmp_path / "certs")
    tools = environment.with_cert_dir(tools, tmp_path / "certs")
    procs = ProcessSet(tmp_path)
    try:
        topo = Topology(procs, tools, Pinning(None, None))
        b_floor, h2_floor = build_paths(topo, ["b-floor", "h2-floor-1x100"])
        assert b_floor.impl == "floor" and h2_floor.impl == "floor"
        for _ in range(3):
            assert http_get(b_floor.url) == (200, b"ok")
        port = h2_floor.load.target.rsplit(":", 1)[1]
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "--http2",
                "--max-time",
                "10",
                "--cacert",
                topo.ca_file,
                "--resolve",
                f"{configs.TIER2_SNI}:{port}:127.0.0.1",
                "-w",
                " %{http_version} %{http_code}",
                h2_floor.url,
                h2_floor.url,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "ok 2 200ok 2 200", done.stdout
    finally:
        procs.stop_all()


def test_the_h2_library_cost_is_measured_on_complete_exchanges() -> None:
    """bench/h2_library.py answers every request it sends (the client side acknowledges the
    DATA, so flow control never stalls a batch) and counts only the server's time."""
    spent, answered = server_seconds(250, 100)
    assert answered == 250
    assert 0.0 < spent < 30.0
