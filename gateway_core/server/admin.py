"""Control path: the admin HTTP server (aiohttp; default 127.0.0.1:15000).

``GET /ready``            200 once listeners serve (header ``X-Config-Version``), 503 while
                          starting or draining
``GET /healthz``          200 while the process runs (liveness)
``GET /config_dump``      the active snapshot as JSON, with its version and the last reload error
                          (and, with ``--workers N``, each worker's pid and version)
``GET /clusters``         live hosts, health, priority loads and panic state per cluster
``GET /stats/prometheus`` Prometheus text format
``GET /explain?url=..``   explain a request against the active snapshot (``&header=Name:value``)
``POST /reload``          reload configuration now (same as SIGHUP)
``POST /drain``           start a graceful drain (same as SIGTERM)

The ``GET`` endpoints are read-only and open; the ``POST`` ones change state and need a bearer
token (``--admin-token-file``) or, with ``--admin-allow-unauthenticated-loopback``, a loopback
caller (``admin_auth``).
``GET /`` (the live dashboard), its ``/dashboard/...`` data and ``GET /help`` (every endpoint,
from this router) are in gateway_core/server/dashboard.py.

The JSON answers are one line; ``?pretty`` (or ``pretty=1``/``true``) indents them for a reader.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from gateway_core.routing.explain import Call, explain
from gateway_core.server.admin_auth import AdminAuth, auth_middleware
from gateway_core.server.dashboard import add_dashboard_routes
from gateway_core.server.dump import cluster_state_dump, snapshot_dump
from gateway_core.server.state import GatewayRuntime
from gateway_core.utils import native

RUNTIME = web.AppKey("runtime", GatewayRuntime)
REGISTRY = web.AppKey("registry", CollectorRegistry)
RELOAD: web.AppKey[Callable[[], Awaitable[bool]]] = web.AppKey("reload")
DRAIN: web.AppKey[Callable[[], None]] = web.AppKey("drain")


def build_admin_app(
    runtime: GatewayRuntime,
    registry: CollectorRegistry,
    reload: Callable[[], Awaitable[bool]],
    drain: Callable[[], None],
    auth: AdminAuth | None = None,
) -> web.Application:
    """The admin app; without ``auth`` nobody may call the mutating endpoints."""
    app = web.Application(middlewares=[auth_middleware(auth or AdminAuth())])
    app[RUNTIME] = runtime
    app[REGISTRY] = registry
    app[RELOAD] = reload
    app[DRAIN] = drain
    # Read-only: probes, scrapers and operators.
    app.router.add_get("/ready", _ready)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/config_dump", _config_dump)
    app.router.add_get("/clusters", _clusters)
    app.router.add_get("/stats/prometheus", _prometheus)
    app.router.add_get("/explain", _explain)
    # Mutating: the middleware asks for the bearer token.
    app.router.add_post("/reload", _reload)
    app.router.add_post("/drain", _drain)
    add_dashboard_routes(app, runtime)
    return app


def _json(request: web.Request, body: Any) -> web.Response:
    """``body`` as JSON: one line, or indented when the query asks for ``pretty``."""
    if request.query.get("pretty", "0").lower() in ("", "1", "true"):
        return web.json_response(body, dumps=_indented)
    return web.json_response(body)


def _indented(body: Any) -> str:
    return json.dumps(body, indent=2) + "\n"


async def _ready(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    if runtime.draining:
        return web.Response(status=503, text="draining\n")
    if not runtime.ready:
        return web.Response(status=503, text="starting\n")
    return web.Response(text="ready\n", headers={"X-Config-Version": runtime.snapshot.version})


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _config_dump(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = snapshot_dump(runtime.snapshot)
    body["last_reload_error"] = runtime.last_error or None
    body["jwks"] = runtime.jwt_keys.dump()
    body["runtime"] = native.status()
    if runtime.workers_info is not None:
        body["workers"] = runtime.workers_info()
    return _json(request, body)


async def _clusters(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return _json(
        request, {key: cluster_state_dump(c) for key, c in sorted(runtime.clusters.items())}
    )


async def _prometheus(request: web.Request) -> web.Response:
    data = generate_latest(request.app[REGISTRY])
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _explain(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    url = request.query.get("url")
    if not url:
        return web.json_response({"error": "query parameter url is required"}, status=400)
    headers = []
    for raw in request.query.getall("header", []):
        name, _, value = raw.partition(":")
        headers.append((name.strip(), value.strip()))
    call = Call(
        url=url,
        method=request.query.get("method", "GET"),
        headers=tuple(headers),
        source_ip=request.query.get("source_ip", "127.0.0.1"),
        http2=request.query.get("http2", "0") in ("1", "true", ""),
        trusted_hops=runtime.settings.xff_trusted_hops,
    )
    result = dataclasses.asdict(explain(runtime.snapshot, call))
    result["clusters"] = {
        d["cluster"]: cluster_state_dump(runtime.clusters[d["cluster"]])
        for d in result["destinations"]
        if d["cluster"] in runtime.clusters
    }
    return _json(request, result)


async def _reload(request: web.Request) -> web.Response:
    ok = await request.app[RELOAD]()
    runtime = request.app[RUNTIME]
    return web.json_response(
        {"accepted": ok, "version": runtime.snapshot.version, "error": runtime.last_error or None},
        status=200 if ok else 400,
    )


async def _drain(request: web.Request) -> web.Response:
    request.app[DRAIN]()
    return web.Response(status=202, text="draining\n")
