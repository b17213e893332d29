"""Tests for bench/otlp_sink.py: the OTLP/HTTP sink that ``bench/run.py --tracing`` starts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench import environment
from bench.paths import build_paths, select
from bench.procs import ProcessSet, http_get
from bench.topology import Pinning, Topology
from certs.generate import generate_lab_certs

SINK = Path(__file__).resolve().parents[2] / "bench" / "otlp_sink.py"
NO_NGINX = not (shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin"))


def test_sink_accepts_trace_exports() -> None:
    """It prints its port, answers POST /v1/traces with 200, and stops on SIGTERM."""
    with subprocess.Popen(
        [sys.executable, str(SINK), "--port", "0"], stdout=subprocess.PIPE, text=True
    ) as proc:
        _exports_once(proc)


def _exports_once(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        url = f"http://{line.split()[-1]}/v1/traces"
        req = urllib.request.Request(
            url, data=b"\x0a\x00", headers={"Content-Type": "application/x-protobuf"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_traced_paths_are_selectable_but_not_default() -> None:
    assert select([], ["b-ours", "b-ours-trace-1", "b-ours-trace-100"]) == (
        "b-ours",
        "b-ours-trace-1",
        "b-ours-trace-100",
    )
    assert "b-ours-trace-1" not in select(["h1"], [])


@pytest.mark.skipif(NO_NGINX, reason="nginx is not installed (apt-get install nginx-light)")
def test_traced_paths_come_up_with_their_tracer(tmp_path: Path) -> None:
    """b-ours-trace-1 and -100 answer end to end through Tier-2s started with the tracing
    flags, both exporting to one OTLP sink."""
    tools, missing = environment.find_tools(need_taskset=False)
    assert tools is not None, missing
    generate_lab_certs(tmp_path / "certs")
    tools = environment.with_cert_dir(tools, tmp_path / "certs")
    procs = ProcessSet(tmp_path)
    try:
        keys = ["b-ours-trace-1", "b-ours-trace-100"]
        paths = build_paths(Topology(procs, tools, Pinning(None, None)), keys)
        sinks = [p for p in procs.procs if p.name == "otlp-sink"]
        assert len(sinks) == 1 and sinks[0].alive()
        for path, percent in zip(paths, ("1", "100"), strict=True):
            assert http_get(path.url) == (200, b"ok")
            argv = list(path.proxies[0].popen.args)  # type: ignore[arg-type]
            assert argv[argv.index("--tracing-sampling") + 1] == percent
            assert argv[argv.index("--tracing-otlp-endpoint") + 1].endswith("/v1/traces")
    finally:
        procs.stop_all()
