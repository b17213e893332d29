"""Tests for bench/otlp_sink.py: the OTLP/HTTP sink that ``bench/run.py --tracing`` starts."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

from bench.paths import select

SINK = Path(__file__).resolve().parents[2] / "bench" / "otlp_sink.py"


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
