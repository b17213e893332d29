"""Data path (benchmark): brings up the backends, our gateways and the nginx proxies of the paths.

HTTP/1.1 paths (all on 127.0.0.1, wrk -> ... -> one-worker nginx answering ``200 ok``):

- ``a``: direct to the backend ("pod");
- ``b-ours`` / ``b-ours-log`` / ``b-nginx``: one proxy (our Tier-2 without and with an access
  log file; nginx with one worker);
- ``c-ours-tls`` / ``c-nginx-tls``: two proxies, TLS between them (SIMPLE with CA + SNI;
  nginx ``proxy_ssl`` with keep-alive and session reuse);
- ``c-ours-plain`` / ``c-nginx-plain``: the same chain in plaintext.

The HTTP/2 and gRPC paths are assembled in bench/paths.py from the processes started here.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import configs
from bench.configs import Upstream
from bench.procs import Proc, ProcessSet, answers_ok, http_get, wait_until

READY_TIMEOUT = 30.0
GRPC_POD = Path(__file__).resolve().with_name("grpc_pod.py")
OTLP_SINK = Path(__file__).resolve().with_name("otlp_sink.py")
FLOOR = Path(__file__).resolve().with_name("floor.py")


@dataclass(frozen=True, slots=True)
class Pinning:
    """CPU for the load generator and backend, and for every proxy process (None: unpinned)."""

    load: int | None
    proxy: int | None
    proxy_set: str = ""
    """``taskset -c`` list for the proxies when they have several CPUs (``--workers N``)."""

    @property
    def proxies(self) -> int | str | None:
        return self.proxy_set or self.proxy


@dataclass(frozen=True, slots=True)
class Load:
    """The load generator of a path and its shape. wrk takes its connections from the
    command line (``--connections``); h2load and the gRPC client have theirs here."""

    tool: str = "wrk"
    """"wrk", "h2load" or "grpc_load"."""
    clients: int = 0
    """Connections (h2load) or channels (gRPC)."""
    streams: int = 0
    """Concurrent streams per connection, or calls in flight per channel."""
    target: str = ""
    headers: tuple[str, ...] = ()
    """Request header lines wrk sends (``Name: value``)."""
    """host:port the load generator really connects to (h2load ``--connect-to``, gRPC)."""


WRK = Load()


@dataclass(frozen=True, slots=True)
class BenchPath:
    key: str
    group: str
    impl: str
    label: str
    url: str
    proxies: tuple[Proc, ...]
    backend: Proc
    load: Load = WRK
    optional: bool = False
    """A path that may fail (our gateway on a protocol it may not speak yet): its failure is
    reported and the other paths are still measured."""
    failure: str = ""
    """Why an optional path could not be brought up or measured ("" when it could)."""


@dataclass(frozen=True, slots=True)
class Tools:
    """Executables and material the topology needs."""

    nginx: str
    tier1: str
    tier2: str
    cert_dir: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Topology:
    def __init__(self, procs: ProcessSet, tools: Tools, pin: Pinning, workers: int = 1) -> None:
        """``workers``: worker processes of every proxy (ours ``--workers N``, nginx
        ``worker_processes N``); the backend keeps one."""
        self.workers = workers
        self.procs = procs
        self.tools = tools
        self.pin = pin
        self.workdir = procs.workdir
        self.root = os.geteuid() == 0
        self.ca_file = str(tools.cert_dir / "ca.crt")
        self._otlp_endpoint = ""

    def otlp_endpoint(self) -> str:
        """The OTLP/HTTP traces URL of the sink (bench/otlp_sink.py, on the load core),
        started on first use."""
        if not self._otlp_endpoint:
            port = free_port()
            argv = [sys.executable, str(OTLP_SINK), "--port", str(port)]
            proc = self.procs.start("otlp-sink", argv, cpu=self.pin.load)
            wait_until(lambda: _port_open(port), proc, timeout=READY_TIMEOUT, what=f"port {port}")
            self._otlp_endpoint = f"http://127.0.0.1:{port}/v1/traces"
        return self._otlp_endpoint

    def start_nginx(self, name: str, conf: str, cpu: int | str | None, port: int) -> Proc:
        path = self.workdir / f"nginx-{name}.conf"
        path.write_text(conf)
        argv = [self.tools.nginx, "-p", str(self.workdir), "-c", str(path)]
        argv += ["-e", str(self.workdir / f"nginx-{name}.error.log")]
        proc = self.procs.start(f"nginx-{name}", argv, cpu=cpu)
        # Listening is enough here: build_paths checks every path end to end afterwards.
        wait_until(lambda: _port_open(port), proc, timeout=READY_TIMEOUT, what=f"port {port}")
        return proc

    def start_gateway(
        self, name: str, tier: str, yaml: str, *, access_log: str = "off", extra: Sequence[str] = ()
    ) -> Proc:
        config = self.workdir / f"{name}.yaml"
        config.write_text(yaml)
        admin = free_port()
        exe = self.tools.tier1 if tier == "tier1" else self.tools.tier2
        argv = [exe, "run", "--config", str(config), "--admin-address", f"127.0.0.1:{admin}"]
        argv += ["--bind-address", "127.0.0.1", "--access-log", access_log]
        argv += ["--cert-dir", str(self.tools.cert_dir)]
        # Fast shutdown: nothing routes to these gateways once the benchmark stops.
        argv += ["--drain-propagation", "0", "--drain-deadline", "2", *extra]
        argv += ["--workers", str(self.workers)]
        proc = self.procs.start(name, argv, cpu=self.pin.proxies)
        ready = f"http://127.0.0.1:{admin}/ready"
        wait_until(answers_ok(ready), proc, timeout=READY_TIMEOUT, what="200 on " + ready)
        return proc

    def backend(self) -> tuple[int, Proc]:
        port = free_port()
        conf = configs.nginx_backend(self.workdir, port, run_as_root=self.root)
        return port, self.start_nginx("backend", conf, self.pin.load, port)

    def grpc_backend(self) -> tuple[int, Proc]:
        """The gRPC pod (bench/grpc_pod.py), pinned like the HTTP pod to the load core."""
        port = free_port()
        argv = [sys.executable, str(GRPC_POD), "--port", str(port)]
        proc = self.procs.start("grpc-pod", argv, cpu=self.pin.load)
        wait_until(lambda: _port_open(port), proc, timeout=READY_TIMEOUT, what=f"port {port}")
        return port, proc

    def floor(self, backend: int, name: str, *, h2: bool) -> tuple[int, Proc]:
        """The minimal forwarder (bench/floor.py) in front of ``backend``, pinned as the
        proxies are; with ``h2`` it terminates TLS (the Tier-2 credential) with ALPN h2."""
        port = free_port()
        argv = [sys.executable, str(FLOOR), "--port", str(port), "--upstream", str(backend)]
        if h2:
            cert, key = self.tier2_credential()
            argv += ["--h2", "--cert", cert, "--key", key]
        proc = self.procs.start(name, argv, cpu=self.pin.proxies)
        wait_until(lambda: _port_open(port), proc, timeout=READY_TIMEOUT, what=f"port {port}")
        return port, proc

    def tier2_credential(self) -> tuple[str, str]:
        cred = self.tools.cert_dir / configs.TIER2_CREDENTIAL
        return str(cred / "tls.crt"), str(cred / "tls.key")

    def ours_https(self, backend: int, *, name: str) -> tuple[int, Proc]:
        """A Tier-2 terminating TLS (the lab credential) in front of the HTTP/1.1 pod."""
        port = free_port()
        yaml = configs.istio_gateway(
            port, Upstream(backend), https_credential=configs.TIER2_CREDENTIAL
        )
        return port, self.start_gateway(name, "tier2", yaml)

    def ours_grpc(self, grpc_backend: int, *, name: str) -> tuple[int, Proc]:
        """A plaintext Tier-2 whose ServiceEntry port is ``grpc`` (protocol GRPC)."""
        port = free_port()
        yaml = configs.istio_gateway(port, Upstream(grpc_backend, grpc=True))
        return port, self.start_gateway(name, "tier2", yaml)

    def nginx_h2(self, backend: int, name: str) -> tuple[int, Proc]:
        """nginx with ``listen ... ssl http2`` and an HTTP/1.1 keep-alive pool to the pod."""
        port = free_port()
        conf = configs.nginx_proxy(
            self.workdir,
            name,
            port,
            Upstream(backend),
            server_cert=self.tier2_credential(),
            http2=True,
            run_as_root=self.root,
            workers=self.workers,
        )
        return port, self.start_nginx(name, conf, self.pin.proxies, port)

    def nginx_grpc(self, grpc_backend: int, name: str) -> tuple[int, Proc]:
        port = free_port()
        conf = configs.nginx_grpc_proxy(
            self.workdir, name, port, grpc_backend, run_as_root=self.root
        )
        return port, self.start_nginx(name, conf, self.pin.proxies, port)

    def ours_single(
        self,
        backend: int,
        *,
        access_log: str,
        name: str,
        extra: Sequence[str] = (),
        extra_yaml: Sequence[str] = (),
    ) -> tuple[int, Proc]:
        """Our Tier-2 in front of ``backend``; ``extra``: more flags; ``extra_yaml``: more
        Istio documents in its configuration."""
        port = free_port()
        yaml = "---\n".join((configs.istio_gateway(port, Upstream(backend)), *extra_yaml))
        return port, self.start_gateway(name, "tier2", yaml, access_log=access_log, extra=extra)

    def ours_chain(self, backend: int, *, tls: bool, name: str) -> tuple[int, tuple[Proc, Proc]]:
        t2_port, t1_port = free_port(), free_port()
        credential = configs.TIER2_CREDENTIAL if tls else ""
        t2_yaml = configs.istio_gateway(t2_port, Upstream(backend), https_credential=credential)
        tier2 = self.start_gateway(f"{name}-tier2", "tier2", t2_yaml)
        upstream = Upstream(t2_port, tls=tls, ca_file=self.ca_file)
        t1_yaml = configs.istio_gateway(t1_port, upstream, host=configs.TIER2_HOST)
        tier1 = self.start_gateway(f"{name}-tier1", "tier1", t1_yaml)
        return t1_port, (tier1, tier2)

    def nginx_single(
        self, backend: int, name: str, *, access_log: str | None = None
    ) -> tuple[int, Proc]:
        port = free_port()
        conf = configs.nginx_proxy(
            self.workdir,
            name,
            port,
            Upstream(backend),
            access_log=access_log,
            run_as_root=self.root,
            workers=self.workers,
        )
        return port, self.start_nginx(name, conf, self.pin.proxies, port)

    def nginx_chain(self, backend: int, *, tls: bool, name: str) -> tuple[int, tuple[Proc, Proc]]:
        t2_port, t1_port = free_port(), free_port()
        server_cert = self.tier2_credential() if tls else None
        t2_conf = configs.nginx_proxy(
            self.workdir,
            f"{name}-tier2",
            t2_port,
            Upstream(backend),
            server_cert=server_cert,
            run_as_root=self.root,
            workers=self.workers,
        )
        tier2 = self.start_nginx(f"{name}-tier2", t2_conf, self.pin.proxies, t2_port)
        upstream = Upstream(t2_port, tls=tls, ca_file=self.ca_file)
        t1_conf = configs.nginx_proxy(
            self.workdir,
            f"{name}-tier1",
            t1_port,
            upstream,
            run_as_root=self.root,
            workers=self.workers,
        )
        tier1 = self.start_nginx(f"{name}-tier1", t1_conf, self.pin.proxies, t1_port)
        return t1_port, (tier1, tier2)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


PATH_KEYS = (
    "a",
    "b-ours",
    "b-ours-log",
    "b-nginx",
    "b-nginx-log",
    "c-ours-tls",
    "c-nginx-tls",
    "c-ours-plain",
    "c-nginx-plain",
)


def check_http(path: BenchPath) -> None:
    """An HTTP/1.1 path answers ``200 ok`` end to end."""
    status, body = http_get(path.url, headers=path.load.headers)
    if status != 200 or body != b"ok":
        logs = "\n".join(f"--- {p.name} log:\n{p.log_tail()}" for p in path.proxies)
        raise RuntimeError(f"{path.key}: GET {path.url} gave {status} {body[:80]!r}\n{logs}")


def build_http1(topo: Topology, key: str, backend: int, pod: Proc) -> BenchPath:
    """One of the ``PATH_KEYS`` paths, started (not yet checked)."""
    url = "http://127.0.0.1:{}/"
    if key == "a":
        return BenchPath(key, "a", "direct", "(a) direct to pod", url.format(backend), (), pod)
    if key in ("b-ours", "b-ours-log"):
        log = "off" if key == "b-ours" else str(topo.workdir / "access.log")
        port, gw = topo.ours_single(backend, access_log=log, name=key)
        label = "(b) Tier-2, access log " + ("off" if log == "off" else "to a file")
        if topo.workers > 1:
            label += f", {topo.workers} workers"
        return BenchPath(key, "b", "ours", label, url.format(port), (gw,), pod)
    if key in ("b-nginx", "b-nginx-log"):
        nginx_log = str(topo.workdir / "nginx-access.log") if key == "b-nginx-log" else None
        port, ng = topo.nginx_single(backend, key, access_log=nginx_log)
        workers = f"{topo.workers} worker" + ("s" if topo.workers > 1 else "")
        label = f"(b) nginx, {workers}" + (", access log to a file" if nginx_log else "")
        return BenchPath(key, "b", "nginx", label, url.format(port), (ng,), pod)
    _, impl, mode = key.split("-")
    tls = mode == "tls"
    between = "TLS" if tls else "plaintext"
    if impl == "ours":
        port, pair = topo.ours_chain(backend, tls=tls, name=key)
        label = f"(c) Tier-1 -> Tier-2, {between} between tiers"
    else:
        port, pair = topo.nginx_chain(backend, tls=tls, name=key)
        label = f"(c) nginx -> nginx, {between} between tiers"
    return BenchPath(key, "c", impl, label, url.format(port), pair, pod)
