"""Control path: the image's Dockerfile and scripts (entrypoint, healthcheck, install).

The scripts run here for real under /bin/sh with stand-in programs on PATH; the health check is
pointed at a real HTTP server on 127.0.0.1. The Dockerfile is checked for the properties the lab
and Kubernetes rely on (build argument, offline mode, non-root user, health check).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose"
ENTRYPOINT = COMPOSE / "entrypoint.sh"
HEALTHCHECK = COMPOSE / "healthcheck.sh"
ECHO_ARGS = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0")" "$@"\n'


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """A bin folder whose programs print their own name and arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tier1-gateway", "tier2-gateway", "python", "hostname"):
        path = bin_dir / name
        path.write_text(ECHO_ARGS if name != "hostname" else "#!/bin/sh\necho pod-abc\n")
        path.chmod(0o755)
    return bin_dir


def entrypoint(stubs: Path, *args: str, **env: str) -> list[str]:
    result = subprocess.run(
        ["/bin/sh", str(ENTRYPOINT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": f"{stubs}:/usr/bin:/bin", **env},
        check=True,
    )
    return result.stdout.splitlines()


def test_first_argument_picks_the_program(stubs: Path) -> None:
    """tier1/tier2 run the gateways, pod the demo pod module, certs the generator."""
    assert entrypoint(stubs, "tier1", "--config", "a") == ["tier1-gateway", "--config", "a"]
    assert entrypoint(stubs, "tier2", "run", "--config", "b") == [
        "tier2-gateway",
        "run",
        "--config",
        "b",
    ]
    assert entrypoint(stubs, "certs", "--out", "/certs") == [
        "python",
        "-m",
        "certs.generate",
        "--out",
        "/certs",
    ]


def test_demo_pod_is_named_after_its_host_unless_told(stubs: Path) -> None:
    """Each replica of a scaled pod service gets its hostname as --pod; --pod=X wins."""
    assert entrypoint(stubs, "pod", "--role=echo") == [
        "python",
        "-m",
        "gateway_lab.demo_pod",
        "--role=echo",
        "--pod",
        "pod-abc",
    ]
    assert entrypoint(stubs, "pod", "--role=echo", "--pod=p1")[-1] == "--pod=p1"


def test_locality_comes_from_the_environment(stubs: Path) -> None:
    """GATEWAY_LOCALITY wins over GATEWAY_REGION/ZONE; an explicit --locality wins over both."""
    region_zone = {"GATEWAY_REGION": "us-west1", "GATEWAY_ZONE": "us-west1-b"}
    assert entrypoint(stubs, "tier2", **region_zone)[-2:] == ["--locality", "us-west1/us-west1-b"]
    assert entrypoint(stubs, "tier2", GATEWAY_LOCALITY="eu/eu-1", **region_zone)[-2:] == [
        "--locality",
        "eu/eu-1",
    ]
    explicit = entrypoint(stubs, "tier1", "--locality=a/b", **region_zone)
    assert explicit == ["tier1-gateway", "--locality=a/b"]
    # Empty downward-API values (no topology labels on the pod) add nothing.
    assert entrypoint(stubs, "tier1", GATEWAY_REGION="", GATEWAY_ZONE="") == ["tier1-gateway"]


def test_extra_args_are_appended_to_run_only(stubs: Path) -> None:
    """GATEWAY_EXTRA_ARGS is split into flags for run, and left out of validate."""
    extra = {"GATEWAY_EXTRA_ARGS": "--drain-deadline 10 --log-level=debug"}
    assert entrypoint(stubs, "tier2", "--config", "c", **extra) == [
        "tier2-gateway",
        "--config",
        "c",
        "--drain-deadline",
        "10",
        "--log-level=debug",
    ]
    assert entrypoint(stubs, "tier2", "validate", "--config", "c", **extra) == [
        "tier2-gateway",
        "validate",
        "--config",
        "c",
    ]


def test_help_lists_the_roles(stubs: Path) -> None:
    """`help` (and no argument) prints the usage text from the script's header."""
    out = entrypoint(stubs)
    assert out[0].startswith("Entrypoint of the multicluster-gateway image")
    assert any(line.startswith("  pod ARGS...") for line in out)
    assert entrypoint(stubs, "help") == out


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/ready" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def admin() -> Iterator[str]:
    """An HTTP server on 127.0.0.1: 200 on /ready, 503 elsewhere."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def python_only_path(tmp_path: Path) -> str:
    """A PATH with `python` and nothing else, so the script takes its Python fallback."""
    bin_dir = tmp_path / "pyonly"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    return str(bin_dir)


@pytest.mark.parametrize("tool", ["curl", "python"])
def test_healthcheck_passes_on_200_and_fails_otherwise(
    admin: str, tool: str, tmp_path: Path
) -> None:
    """The health check exits 0 on 200 and non-zero on 503 or no answer, with curl or Python."""
    if tool == "curl":
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        path = os.environ.get("PATH", "/usr/bin:/bin")
    else:
        path = python_only_path(tmp_path)

    def check(url: str) -> int:
        return subprocess.run(
            ["/bin/sh", str(HEALTHCHECK)],
            env={"PATH": path, "HEALTH_URL": url},
            capture_output=True,
            timeout=30,
        ).returncode

    assert check(f"{admin}/ready") == 0
    assert check(f"{admin}/draining") != 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert check(f"http://127.0.0.1:{closed}/ready") != 0


@pytest.fixture
def grpc_pod() -> Iterator[int]:
    """A real gRPC demo pod (``pod --role grpc``) on 127.0.0.1; yields its port."""
    argv = [sys.executable, "-m", "gateway_lab.demo_pod", "--role", "grpc"]
    argv += ["--listen", "127.0.0.1:0", "--cluster", "c1", "--pod", "grpc-0", "--version", "v1"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, "the gRPC pod printed nothing within 30 s"
            yield int(json.loads(proc.stdout.readline())["listening"]["port"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_healthcheck_asks_grpc_health_for_grpc_urls(grpc_pod: int) -> None:
    """grpc://HOST:PORT is healthy when grpc.health.v1 answers SERVING, not when nothing listens."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"

    def check(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["/bin/sh", str(HEALTHCHECK)],
            env={"PATH": path, "HEALTH_URL": url},
            capture_output=True,
            text=True,
            timeout=30,
        )

    serving = check(f"grpc://127.0.0.1:{grpc_pod}")
    assert (serving.returncode, serving.stdout) == (0, "SERVING\n"), serving.stderr
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    refused = check(f"grpc://127.0.0.1:{closed}")
    assert refused.returncode == 1
    assert "health check failed: UNAVAILABLE" in refused.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (COMPOSE / "Dockerfile").read_text()
    text = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    """Base image argument, two stages, a numeric non-root USER and a HEALTHCHECK on /ready."""
    steps = dockerfile_instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users == ["10001:10001"]
    assert [w for w, _ in final].index("USER") < [w for w, _ in final].index("ENTRYPOINT")
    (health,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert health.endswith('CMD ["/usr/local/bin/gateway-healthcheck"]')
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "HEALTH_URL=http://127.0.0.1:15000/ready" in env


def test_wheelhouse_mode_never_reaches_an_index() -> None:
    """INSTALL_FROM=wheels installs with --no-index from the wheelhouse, for both steps."""
    script = (COMPOSE / "install.sh").read_text()
    assert "set -- --no-index --find-links /build/wheels" in script
    assert script.count('"$pip" install "$@"') == 2
    steps = dockerfile_instructions()
    assert ("COPY", "deploy/compose/wheels/ /build/wheels/") in steps
    assert ("RUN", "sh /build/install.sh deps") in steps
    assert ("RUN", "sh /build/install.sh project") in steps
