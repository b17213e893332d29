"""Benchmark: the whole command on a small subset of paths, and its option handling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench import cli
from bench.procs import process_tree
from bench.pyspy import find_py_spy
from bench.syscalls import find_strace

TOOLS = ("nginx", "wrk", "taskset")
MISSING = [t for t in TOOLS if not (shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin"))]


def test_quick_means_short_single_runs() -> None:
    """--quick shortens runs to 3 s, one each, without waiting for quiet or retrying."""
    opts = cli.parse_args(["--quick", "--runs", "5", "--duration", "20"])
    assert (opts.duration, opts.runs, opts.warmup, opts.retries) == (3.0, 1, 1.0, 0)
    assert opts.quiet_timeout == 0.0
    default = cli.parse_args([])
    assert (default.duration, default.runs, default.connections) == (10.0, 3, 50)
    assert default.pin and default.rss and not default.profile


def test_group_flags() -> None:
    """--h1, --h2 and --grpc collect their groups, in the order given; none by default."""
    assert cli.parse_args([]).groups == ()
    assert cli.parse_args(["--h2", "--grpc", "--quick"]).groups == ("h2", "grpc")
    assert cli.parse_args(["--h1", "--only", "h2-nginx-1x100"]).groups == ("h1",)


def test_profile_target_defaults_to_b_ours() -> None:
    """--profile alone profiles b-ours; a path key picks another of our paths."""
    assert cli.parse_args(["--profile"]).profile == "b-ours"
    assert cli.parse_args(["--profile", "c-ours-tls", "--syscalls"]).profile == "c-ours-tls"


def test_unknown_path_is_rejected(tmp_path: Path) -> None:
    """Asking for a path that does not exist fails with exit code 1, starts nothing, and
    gives the Ctrl-C and SIGTERM handlers back."""
    if MISSING:
        pytest.skip(f"missing tools: {', '.join(MISSING)}")
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert cli.main(["--only", "z-nothing", "--results-dir", str(tmp_path)]) == 1
    assert not list(tmp_path.iterdir())
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


@pytest.mark.skipif(bool(MISSING), reason=f"missing tools: {', '.join(MISSING)}")
def test_benchmark_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Direct, one Tier-2 and one nginx proxy are measured, tables printed, JSON written,
    and no process is left behind; the profile and syscall counts when their tools exist."""
    before = set(process_tree(os.getpid()))
    argv = ["--only", "a", "b-ours", "b-nginx", "--duration", "1", "--runs", "1"]
    argv += ["--warmup", "1", "--transfer-mb", "2", "--stall", "0.1", "--retries", "0"]
    argv += ["--quiet-timeout", "0"]
    argv += ["--results-dir", str(tmp_path)]
    profile, syscalls = find_py_spy() is not None, find_strace() is not None
    extras = (["--profile"] if profile else []) + (["--syscalls"] if syscalls else [])
    assert cli.main(argv + extras) == 0
    out = capsys.readouterr().out
    if profile:
        assert "py-spy profile of b-ours under load" in out
    if syscalls:
        assert "b-nginx: system calls per request" in out
    assert "| b-ours / b-nginx |" in out
    assert "reaches" in out
    assert "| upload | chunked | 2 |" in out
    (result,) = tmp_path.glob("bench-*.json")
    doc = json.loads(result.read_text())
    assert set(doc["paths"]) == {"a", "b-ours", "b-nginx"}
    assert doc["paths"]["b-ours"]["errors"] == 0
    assert doc["paths"]["b-ours"]["rps"] > 0
    assert doc["paths"]["b-ours"]["proxy_cpu_us_per_request"] > 0
    assert [r["ours"] for r in doc["ratios"]] == ["b-ours"]
    assert len(doc["rss"]) == 4
    assert all(t["intact"] for t in doc["rss"])
    assert doc["meta"]["options"]["only"] == ["a", "b-ours", "b-nginx"]
    if profile:
        assert doc["profile"]["samples"] > 0
    if syscalls:
        assert set(doc["syscalls_per_request"]) == {"b-ours", "b-nginx"}
    assert set(process_tree(os.getpid())) == before


@pytest.mark.skipif(
    bool(MISSING) or shutil.which("h2load") is None,
    reason="needs nginx, wrk, taskset and h2load (nghttp2-client)",
)
def test_h2_and_grpc_run_prints_nginx_side_and_names_what_ours_cannot_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--h2-style smoke: the nginx HTTP/2 and grpc_pass legs produce numbers; each of our
    legs either produces numbers too or is reported NOT MEASURED with its reason, and the run
    still exits 0 and writes its JSON. The HTTP/1.1 RSS test is not run for these paths."""
    before = set(process_tree(os.getpid()))
    ours, nginx = ["h2-ours-1x100", "grpc-ours"], ["h2-nginx-1x100", "grpc-nginx"]
    argv = ["--only", *ours, *nginx, "--duration", "1", "--runs", "1", "--warmup", "1"]
    argv += ["--retries", "0", "--quiet-timeout", "0", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    (result,) = tmp_path.glob("bench-*.json")
    doc = json.loads(result.read_text())
    for key in nginx:
        path = doc["paths"][key]
        assert path["rps"] > 0 and path["errors"] == 0
        assert path["proxy_cpu_us_per_request"] > 0
        assert path["proxy_rss_peak_bytes"] > 0
        assert 0 < path["p50_ms"] <= path["p99_ms"]
    for key in ours:
        if key in doc["unavailable"]:
            assert key not in doc["paths"]
            assert f"NOT MEASURED: {key} (" in out
            assert doc["unavailable"][key]
        else:
            assert doc["paths"][key]["rps"] > 0
    assert "Traceback" not in out
    assert "| h2-nginx-1x100: h2 nginx, ssl http2" in out
    assert doc["rss"] == []
    assert set(process_tree(os.getpid())) == before


def _bench_processes(workdir_prefix: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if workdir_prefix.encode() in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(bool(MISSING), reason=f"missing tools: {', '.join(MISSING)}")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_every_process(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (or SIGTERM) in the middle of a run exits 130, leaves no process behind and
    removes its working directory."""
    run_py = Path(cli.__file__).with_name("run.py")
    argv = [sys.executable, str(run_py), "--only", "b-ours", "--duration", "30"]
    argv += ["--quiet-timeout", "0", "--results-dir", str(tmp_path / "results")]
    # The working directory (configs, logs) lands under tmp_path, which names every process.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("warm-up"):
            break
    assert set(_bench_processes(str(tmp_path))) - {proc.pid}, "gateway and nginx are running"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: stopping every process" in err
    assert _bench_processes(str(tmp_path)) == []
    assert not list(tmp_path.glob("gateway-bench-*"))


def test_workers_mode_gives_every_proxy_n_workers_and_n_cpus_where_there_are() -> None:
    """--workers N: ours runs ``--workers N``, nginx ``worker_processes N`` with ``reuseport``;
    the proxies get CPUs 1..N when the machine has them, else the CPUs there are."""
    from bench import configs, environment
    from bench.configs import Upstream

    assert cli.parse_args([]).workers == 1
    assert cli.parse_args(["--workers", "4"]).workers == 4
    conf = configs.nginx_proxy(
        Path("/w"), "p", 18080, Upstream(19001), run_as_root=False, workers=3
    )
    assert "worker_processes 3;" in conf and "backlog=4096 reuseport;" in conf
    single = configs.nginx_proxy(Path("/w"), "p", 18080, Upstream(19001), run_as_root=False)
    assert "worker_processes 1;" in single and "reuseport" not in single
    cpus = sorted(os.sched_getaffinity(0))
    pin = environment.pinning(True, 2)
    if len(cpus) >= 3:
        assert pin.proxies == f"{cpus[1]},{cpus[2]}"
    elif len(cpus) == 2:
        assert pin.proxies == cpus[1]  # both workers share the one proxy CPU
    assert environment.pinning(True, 1).proxy_set == ""


@pytest.mark.skipif(bool(MISSING), reason=f"missing tools: {', '.join(MISSING)}")
def test_workers_mode_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two workers on each side: both paths measured with their whole process trees' CPU,
    labelled with the worker count, and no process left behind."""
    before = set(process_tree(os.getpid()))
    argv = ["--only", "b-ours", "b-nginx", "--duration", "1", "--runs", "1", "--warmup", "1"]
    argv += ["--retries", "0", "--quiet-timeout", "0", "--workers", "2"]
    assert cli.main([*argv, "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(b) Tier-2, access log off, 2 workers" in out
    assert "(b) nginx, 2 workers" in out
    (result,) = tmp_path.glob("bench-*.json")
    doc = json.loads(result.read_text())
    assert doc["meta"]["options"]["workers"] == 2
    assert doc["paths"]["b-ours"]["errors"] == 0 and doc["paths"]["b-ours"]["rps"] > 0
    assert set(process_tree(os.getpid())) == before
