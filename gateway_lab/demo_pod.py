"""Data path (lab): demo pods that stand in for Kubernetes workloads behind the Tier-2 gateways.

One aiohttp app plays a role — bookinfo's ``productpage``/``details``/``reviews``/``ratings``,
Istio's ``helloworld``, an ``httpbin`` subset or a generic ``echo`` — and stamps every response
with ``x-demo-cluster``/``x-demo-pod``/``x-demo-version``/``x-demo-locality`` so lab scenarios
can see which cluster, pod and version served a request. Control endpoints under ``/admin``
make a pod fail or turn unready, which drives outlier detection and health checking. The
command line also runs the ``grpc`` role, the gRPC demo service of ``gateway_lab.grpc_pod``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gateway_core.snapshot import Locality
from gateway_lab import demo_pod_bookinfo as bookinfo

ROLES = ("productpage", "details", "reviews", "ratings", "echo", "helloworld", "httpbin")
GRPC_ROLE = "grpc"
"""The gRPC demo service (gateway_lab.grpc_pod): not an aiohttp app, so not in ``ROLES``."""
POD_ROLES = (*ROLES, GRPC_ROLE)
CHUNK = 64 * 1024
MAX_BYTES = 1 << 30
MAX_DELAY = 30.0
_PATTERN = bytes(range(256)) * (CHUNK // 256)


@dataclass(frozen=True, slots=True)
class PodConfig:
    role: str
    host: str = "127.0.0.1"
    port: int = 0
    cluster: str = "cluster1"
    pod: str = "pod-0"
    version: str = "v1"
    locality: Locality = field(default_factory=Locality)
    details_url: str | None = None
    reviews_url: str | None = None
    ratings_url: str | None = None
    proxy: str | None = None
    """``host:port`` that backend calls connect to (a gateway) while Host names the URL's host."""


@dataclass(slots=True)
class PodState:
    fail_status: int | None = None
    ready: bool = True
    requests: int = 0
    sockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)


CONFIG = web.AppKey("demo_config", PodConfig)
STATE = web.AppKey("demo_state", PodState)


def pattern_bytes(n: int) -> bytes:
    """The body ``GET /bytes/<n>`` streams: byte ``i`` has value ``i % 256``."""
    return (_PATTERN * (n // CHUNK + 1))[:n]


def identity(request: web.Request) -> dict[str, Any]:
    cfg = request.app[CONFIG]
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {
        "cluster": cfg.cluster,
        "pod": cfg.pod,
        "version": cfg.version,
        "role": cfg.role,
        "region": cfg.locality.region,
        "zone": cfg.locality.zone,
        "subzone": cfg.locality.subzone,
        "host": request.host,
        "path": request.path,
        "method": request.method,
        "headers": headers,
        "query": dict(request.query),
    }


@web.middleware
async def _failure_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    state = request.app[STATE]
    state.requests += 1
    if state.fail_status is not None and not request.path.startswith("/admin/"):
        return web.Response(status=state.fail_status, text="injected failure\n")
    response: web.StreamResponse = await handler(request)
    return response


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    cfg = request.app[CONFIG]
    response.headers["x-demo-cluster"] = cfg.cluster
    response.headers["x-demo-pod"] = cfg.pod
    response.headers["x-demo-version"] = cfg.version
    response.headers["x-demo-locality"] = str(cfg.locality)


# ---- common endpoints -------------------------------------------------------------------------


async def _root(request: web.Request) -> web.Response:
    return web.json_response(identity(request))


async def _healthz(request: web.Request) -> web.Response:
    if not request.app[STATE].ready:
        return web.Response(status=503, text="not ready\n")
    return web.Response(text="ok\n")


async def _admin_fail(request: web.Request) -> web.Response:
    status = _int_arg(request.query.get("status", "503"), 200, 599)
    request.app[STATE].fail_status = status
    return web.json_response(_state_json(request.app))


async def _admin_recover(request: web.Request) -> web.Response:
    request.app[STATE].fail_status = None
    return web.json_response(_state_json(request.app))


async def _admin_ready(request: web.Request) -> web.Response:
    value = request.query.get("value", "true").lower()
    if value not in ("true", "false"):
        raise web.HTTPBadRequest(text="value must be true or false\n")
    request.app[STATE].ready = value == "true"
    return web.json_response(_state_json(request.app))


async def _admin_state(request: web.Request) -> web.Response:
    return web.json_response(_state_json(request.app))


def _state_json(app: web.Application) -> dict[str, Any]:
    state, cfg = app[STATE], app[CONFIG]
    return {
        "role": cfg.role,
        "cluster": cfg.cluster,
        "pod": cfg.pod,
        "version": cfg.version,
        "locality": str(cfg.locality),
        "failing": state.fail_status,
        "ready": state.ready,
        "requests": state.requests,
    }


async def _websocket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    request.app[STATE].sockets.add(ws)
    async for msg in ws:
        if msg.type is aiohttp.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def _bytes(request: web.Request) -> web.StreamResponse:
    n = _int_arg(request.match_info["n"], 0, MAX_BYTES)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    view = memoryview(_PATTERN)
    remaining = n
    while remaining > 0:
        # Every write awaits the transport's drain, so at most one chunk is buffered.
        piece = min(remaining, CHUNK)
        await response.write(view[:piece])
        remaining -= piece
    await response.write_eof()
    return response


async def _upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    received = 0
    async for chunk in request.content.iter_chunked(CHUNK):
        digest.update(chunk)
        received += len(chunk)
    return web.json_response({"received": received, "sha256": digest.hexdigest()})


def _int_arg(text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"not an integer: {text!r}\n") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"{value} is outside [{low}, {high}]\n")
    return value


# ---- httpbin / helloworld ---------------------------------------------------------------------


async def _headers(request: web.Request) -> web.Response:
    return web.json_response({"headers": identity(request)["headers"]})


async def _status(request: web.Request) -> web.Response:
    code = _int_arg(request.match_info["code"], 200, 599)
    if code == 418:
        return web.Response(status=418, text="I'm a teapot!\n")
    return web.Response(status=code)


async def _delay(request: web.Request) -> web.Response:
    try:
        seconds = float(request.match_info["seconds"])
    except ValueError:
        raise web.HTTPBadRequest(text="delay must be a number\n") from None
    if not seconds >= 0:
        raise web.HTTPBadRequest(text="delay must be >= 0\n")
    await asyncio.sleep(min(seconds, MAX_DELAY))
    return web.json_response(identity(request))


async def _hello(request: web.Request) -> web.Response:
    cfg = request.app[CONFIG]
    return web.Response(text=f"Hello version: {cfg.version}, instance: {cfg.pod}\n")


async def _hello_health(request: web.Request) -> web.Response:
    return web.Response(text="Helloworld is healthy")


# ---- wiring -----------------------------------------------------------------------------------


def build_app(config: PodConfig) -> web.Application:
    if config.role not in ROLES:
        raise ValueError(f"unknown role {config.role!r}; expected one of {', '.join(ROLES)}")
    app = web.Application(middlewares=[_failure_middleware])
    app[CONFIG] = config
    app[STATE] = PodState()
    app.on_response_prepare.append(_stamp)
    app.on_shutdown.append(_close_sockets)
    me = bookinfo.Served(config.cluster, config.pod, config.version, str(config.locality))
    backends = bookinfo.Backends(
        me, config.details_url, config.reviews_url, config.ratings_url, config.proxy
    )
    # bookinfo routes go first so the echo role's catch-all route cannot shadow them.
    bookinfo.install(app, backends, config.role)
    app.router.add_routes(_routes(config.role))
    return app


def _routes(role: str) -> list[web.AbstractRouteDef]:
    routes: list[web.AbstractRouteDef] = [
        web.get("/", _root),
        web.get("/healthz", _healthz),
        web.get("/healthz/ready", _healthz),
        web.post("/admin/fail", _admin_fail),
        web.post("/admin/recover", _admin_recover),
        web.post("/admin/ready", _admin_ready),
        web.get("/admin/state", _admin_state),
        web.get("/ws", _websocket),
        web.get("/bytes/{n}", _bytes),
        web.post("/upload", _upload),
    ]
    if role in ("echo", "httpbin"):
        routes += [
            web.get("/headers", _headers),
            web.route("*", "/status/{code}", _status),
            web.route("*", "/delay/{seconds}", _delay),
            web.route("*", "/anything{tail:.*}", _root),
        ]
    if role == "helloworld":
        routes += [web.get("/hello", _hello), web.get("/health", _hello_health)]
    if role == "echo":
        routes.append(web.route("*", "/{tail:.*}", _root))
    return routes


async def _close_sockets(app: web.Application) -> None:
    for ws in list(app[STATE].sockets):
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"pod shutting down")


async def start_pod(config: PodConfig) -> web.AppRunner:
    """Serve ``config``; with port 0, ``bound_port(runner)`` tells which port was picked."""
    runner = web.AppRunner(build_app(config), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.host, config.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    address: Any = runner.addresses[0]
    return int(address[1])


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_args(argv: Sequence[str]) -> PodConfig:
    parser = argparse.ArgumentParser(prog="python -m gateway_lab.demo_pod", description=__doc__)
    parser.add_argument("--role", required=True, choices=POD_ROLES)
    parser.add_argument("--listen", required=True, help="HOST:PORT (port 0 picks one)")
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--pod", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--locality", default="", help="REGION/ZONE[/SUBZONE]")
    parser.add_argument("--details-url")
    parser.add_argument("--reviews-url")
    parser.add_argument("--ratings-url")
    parser.add_argument("--proxy", help="HOST:PORT to send backend calls through")
    ns = parser.parse_args(list(argv))
    try:
        host, port = parse_listen(ns.listen)
    except ValueError as exc:
        parser.error(str(exc))
    return PodConfig(
        role=ns.role,
        host=host,
        port=port,
        cluster=ns.cluster,
        pod=ns.pod,
        version=ns.version,
        locality=Locality.parse(ns.locality),
        details_url=ns.details_url,
        reviews_url=ns.reviews_url,
        ratings_url=ns.ratings_url,
        proxy=ns.proxy,
    )


async def serve(config: PodConfig) -> None:
    """Run until SIGINT/SIGTERM; prints the bound address so a parent can use port 0."""
    runner = await start_pod(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = {"role": config.role, "pod": config.pod, "host": config.host, "port": bound_port(runner)}
    print(json.dumps({"listening": info}), flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if config.role == GRPC_ROLE:
        from gateway_lab import grpc_pod

        asyncio.run(grpc_pod.serve(config))
    else:
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
