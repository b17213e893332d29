"""Data path (benchmark): the measured paths by key, brought up and checked end to end.

HTTP/1.1 paths (the default set, bench/topology.py): ``a``, ``b-*``, ``c-*`` with wrk. On
request only (``--only``): ``b-ours-trace-1`` / ``b-ours-trace-100``, ``b-ours`` with a tracer
sampling 1 % / 100 % that exports to a local OTLP sink (bench/otlp_sink.py); ``b-ours-jwt``,
``b-ours`` with a RequestAuthentication rule (ES256, inline JWKS) and wrk sending a valid token
with every request.

HTTP/2 paths, h2load over TLS with ALPN h2, to the same HTTP/1.1 pod:

- ``h2-ours-1x100`` / ``h2-nginx-1x100``: one connection with 100 concurrent streams;
- ``h2-ours-10x10`` / ``h2-nginx-10x10``: 10 connections with 10 streams each.

The floor, on request only (``--floor`` or ``--only``): bench/floor.py, the smallest forwarder
that does a proxy's work (uvloop, httptools, keep-alive upstream connections, no features),
measured in the same run as ours and nginx:

- ``b-floor``: as ``b-ours``, HTTP/1.1 both ways;
- ``h2-floor-1x100`` / ``h2-floor-10x10``: as ``h2-ours-*``, with the same ``h2`` library.

gRPC paths, bench/grpc_load.py (plaintext h2c) to bench/grpc_pod.py, 10 channels x 10 calls:

- ``grpc-direct``: the load client straight to the gRPC pod (the ceiling, like ``a``);
- ``grpc-ours`` / ``grpc-nginx``: through our Tier-2 / through nginx ``grpc_pass``.

Our legs of the HTTP/2 and gRPC paths are *optional*: if our gateway cannot be brought up for
them or does not speak the protocol, the path carries the reason in ``failure`` and the others
are still measured.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from bench import configs, drivers
from bench.procs import Proc, StartError
from bench.topology import PATH_KEYS, BenchPath, Load, Topology, build_http1
from gateway_lab.jwt_issuer import ISSUER, ensure_issuer_key, jwks_document, mint

H2_SHAPES = {"1x100": (1, 100), "10x10": (10, 10)}
H2_KEYS = tuple(f"h2-{impl}-{shape}" for shape in H2_SHAPES for impl in ("ours", "nginx"))
FLOOR_KEYS = ("b-floor", "h2-floor-1x100", "h2-floor-10x10")
"""The minimal forwarder (bench/floor.py) on the ``b`` and ``h2`` paths."""
GRPC_SHAPE = (10, 10)
GRPC_KEYS = ("grpc-direct", "grpc-ours", "grpc-nginx")
TRACE_KEYS = ("b-ours-trace-1", "b-ours-trace-100")
"""``b-ours`` with a tracer sampling 1 % / 100 %, exporting to bench/otlp_sink.py."""
JWT_KEYS = ("b-ours-jwt",)
"""``b-ours`` verifying a JWT on every request (the issue's "JWT rule on")."""
ALL_KEYS = PATH_KEYS + TRACE_KEYS + JWT_KEYS + FLOOR_KEYS + H2_KEYS + GRPC_KEYS
GROUPS = {"h1": PATH_KEYS, "h2": H2_KEYS, "grpc": GRPC_KEYS, "floor": FLOOR_KEYS}


def select(groups: Sequence[str], only: Sequence[str]) -> tuple[str, ...]:
    """The keys of ``groups`` plus those named in ``only``, in measuring order; the HTTP/1.1
    set when neither names anything."""
    wanted = {key for group in groups for key in GROUPS[group]} | set(only)
    if not wanted:
        return PATH_KEYS
    unknown = sorted(wanted - set(ALL_KEYS))
    if unknown:
        raise ValueError(f"unknown paths {unknown}; known: {', '.join(ALL_KEYS)}")
    return tuple(key for key in ALL_KEYS if key in wanted)


def build_paths(topo: Topology, keys: Sequence[str] = PATH_KEYS) -> list[BenchPath]:
    """Start what ``keys`` need and return those paths in measuring order (``ALL_KEYS``);
    each is checked end to end (``drivers.check``). A required path that fails raises; an
    optional one is returned with its ``failure`` set."""
    unknown = sorted(set(keys) - set(ALL_KEYS))
    if unknown:
        raise ValueError(f"unknown paths {unknown}; known: {', '.join(ALL_KEYS)}")
    ordered = [key for key in ALL_KEYS if key in keys]
    pod: tuple[int, Proc] | None = None
    grpc_pod: tuple[int, Proc] | None = None
    if any(key not in GRPC_KEYS for key in ordered):
        pod = topo.backend()
    if any(key in GRPC_KEYS for key in ordered):
        grpc_pod = topo.grpc_backend()
    paths = []
    for key in ordered:
        backend = grpc_pod if key in GRPC_KEYS else pod
        assert backend is not None
        paths.append(_bring_up(topo, key, *backend))
    return paths


def _bring_up(topo: Topology, key: str, port: int, pod: Proc) -> BenchPath:
    optional = key.split("-")[:2] in (["h2", "ours"], ["grpc", "ours"])
    try:
        path = _build(topo, key, port, pod)
        drivers.check(path)
    except (StartError, RuntimeError, OSError) as exc:
        if not optional:
            raise
        reason = _one_line(exc).removeprefix(f"{key}: ")
        kind = key.split("-")[0]
        return BenchPath(key, kind, "ours", _label(key), "", (), pod, optional=True, failure=reason)
    return dataclasses.replace(path, optional=optional)


def _one_line(exc: BaseException) -> str:
    """The first line of an error (a start error's log tail follows on the next lines); the
    caller prints the path's key itself."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _label(key: str) -> str:
    kind, impl, *rest = key.split("-")
    if kind == "h2":
        clients, streams = H2_SHAPES[rest[0]]
        via = {
            "ours": "Tier-2, TLS with ALPN h2",
            "floor": "the floor (bench/floor.py, the h2 library), TLS with ALPN h2",
            "nginx": "nginx, ssl http2, 1 worker",
        }[impl]
        return f"h2 {via}, {clients} conn x {streams} streams, HTTP/1.1 to the pod"
    channels, calls = GRPC_SHAPE
    via = {
        "direct": "direct to the gRPC pod",
        "ours": "Tier-2, h2c, GRPC upstream",
        "nginx": "nginx grpc_pass, h2c, 1 worker",
    }[impl]
    return f"gRPC {via}, {channels} channels x {calls} calls"


def _build(topo: Topology, key: str, port: int, pod: Proc) -> BenchPath:
    if key in PATH_KEYS:
        return build_http1(topo, key, port, pod)
    if key in TRACE_KEYS:
        percent = key.rsplit("-", 1)[1]
        tracing = ("--tracing-otlp-endpoint", topo.otlp_endpoint(), "--tracing-sampling", percent)
        listen, gw = topo.ours_single(port, access_log="off", name=key, extra=tracing)
        label = f"(b) Tier-2, tracing sampled at {percent} % to a local OTLP sink"
        return BenchPath(key, "b", "ours", label, f"http://127.0.0.1:{listen}/", (gw,), pod)
    if key in JWT_KEYS:
        return _jwt_path(topo, key, port, pod)
    if key == "b-floor":
        listen, floor = topo.floor(port, key, h2=False)
        label = "(b) the floor: bench/floor.py, a minimal uvloop + httptools forwarder"
        return BenchPath(key, "b", "floor", label, f"http://127.0.0.1:{listen}/", (floor,), pod)
    kind, impl, *rest = key.split("-")
    if kind == "h2":
        if impl == "ours":
            listen, proxy = topo.ours_https(port, name=key)
        elif impl == "floor":
            listen, proxy = topo.floor(port, key, h2=True)
        else:
            listen, proxy = topo.nginx_h2(port, key)
        clients, streams = H2_SHAPES[rest[0]]
        load = Load("h2load", clients, streams, f"127.0.0.1:{listen}")
        url = f"https://{configs.TIER2_SNI}:{listen}/"
        return BenchPath(key, "h2", impl, _label(key), url, (proxy,), pod, load)
    channels, calls = GRPC_SHAPE
    proxies: tuple[Proc, ...] = ()
    if impl == "direct":
        listen = port
    elif impl == "ours":
        listen, proxy = topo.ours_grpc(port, name=key)
        proxies = (proxy,)
    else:
        listen, proxy = topo.nginx_grpc(port, key)
        proxies = (proxy,)
    target = f"127.0.0.1:{listen}"
    load = Load("grpc_load", channels, calls, target)
    return BenchPath(key, "grpc", impl, _label(key), f"grpc://{target}", proxies, pod, load)


def _jwt_path(topo: Topology, key: str, port: int, pod: Proc) -> BenchPath:
    """``b-ours`` with a RequestAuthentication rule of the lab's issuer (its key made in the
    bench's workdir, its JWKS inline) and wrk presenting one valid ES256 token throughout."""
    rule = jwt_rule(topo.workdir)
    listen, gw = topo.ours_single(port, access_log="off", name=key, extra_yaml=(rule,))
    token = mint(topo.workdir, "bench", [], ttl=86400)
    load = Load(headers=(f"Authorization: Bearer {token}",))
    label = "(b) Tier-2, a JWT rule verifying every request's token"
    return BenchPath(key, "b", "ours", label, f"http://127.0.0.1:{listen}/", (gw,), pod, load)


def jwt_rule(workdir: Path) -> str:
    """A RequestAuthentication of the lab issuer whose key is (made) in ``workdir``, with its
    JWKS inline (no fetch during a benchmark)."""
    ensure_issuer_key(workdir)
    return f"""apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: bench-jwt}}
spec:
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks_document(workdir)}'
"""
