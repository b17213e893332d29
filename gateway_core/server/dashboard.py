"""Control path: the admin port's live dashboard (``GET /``) and ``GET /help``.

The page is one HTML file with its script and style sheet, shipped as package data
(``gateway_core/server/static``) and served from here: no CDN, no other origin (its
Content-Security-Policy allows only this admin address). It opens ``/dashboard/events``, a
Server-Sent Events stream that sends the whole document (``live.dashboard_document``) every
update period, and posts the ``explain`` form to ``/explain``. The document is built at most once
per ``MIN_SAMPLE_GAP`` seconds whatever the number of open pages; every stream ends when the admin
server shuts down, so an open browser never holds up a drain or a stop.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from gateway_core.server.live import RateSampler, dashboard_document, read_counters
from gateway_core.server.state import GatewayRuntime

UPDATE_INTERVAL = 0.5
"""Seconds between two events of one stream (``?interval=`` chooses within the bounds below)."""
INTERVAL_BOUNDS = (0.2, 10.0)
MIN_SAMPLE_GAP = 0.15
"""Streams asking within this many seconds of the last sample get that sample again."""
STATIC_FILES = {
    "/": ("dashboard.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "application/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class Dashboard:
    """The shared sampler of every open page, and the signal that ends their streams."""

    def __init__(self, runtime: GatewayRuntime) -> None:
        self.runtime = runtime
        self.sampler = RateSampler()
        self.closing = asyncio.Event()
        self._last: tuple[float, bytes] | None = None

    def document(self, now: float, *, fresh: bool = False) -> bytes:
        """The dashboard document as JSON (``now``: the event loop's clock). Unless ``fresh``,
        a sample younger than ``MIN_SAMPLE_GAP`` is served again (streams share samples)."""
        last = self._last
        if not fresh and last is not None and 0 <= now - last[0] < MIN_SAMPLE_GAP:
            return last[1]
        counters = read_counters(self.runtime, now)
        self.sampler.add(counters)
        doc = dashboard_document(self.runtime, counters, self.sampler.rates(), now)
        body = json.dumps(doc).encode()
        self._last = (now, body)
        return body


DASHBOARD = web.AppKey("dashboard", Dashboard)


def add_dashboard_routes(app: web.Application, runtime: GatewayRuntime) -> None:
    app[DASHBOARD] = Dashboard(runtime)
    for path, (name, content_type) in STATIC_FILES.items():
        data = resources.files("gateway_core.server").joinpath("static", name).read_bytes()
        app.router.add_get(path, _static(data, content_type, name))
    app.router.add_get("/dashboard/state", _state)
    app.router.add_get("/dashboard/events", _events)
    app.router.add_get("/help", _help)
    app.on_shutdown.append(_close_streams)


def _static(data: bytes, content_type: str, name: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, content_type=content_type, headers=SECURITY_HEADERS)

    handler.__doc__ = (
        "the live dashboard page (open it in a browser)"
        if name.endswith(".html")
        else f"the dashboard's {name.rpartition('.')[2].upper()}"
    )
    return handler


async def _close_streams(app: web.Application) -> None:
    app[DASHBOARD].closing.set()


async def _state(request: web.Request) -> web.Response:
    """the dashboard's document as JSON: version, last reload, listeners and certificates,
    clusters with priorities and hosts, request rates and split, recent errors"""
    body = request.app[DASHBOARD].document(asyncio.get_running_loop().time(), fresh=True)
    if _pretty(request):
        body = (json.dumps(json.loads(body), indent=2) + "\n").encode()
    return web.Response(body=body, content_type="application/json")


async def _events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: the dashboard's document every ?interval= seconds (default 0.5)"""
    dashboard = request.app[DASHBOARD]
    try:
        interval = float(request.query.get("interval", UPDATE_INTERVAL))
    except ValueError:
        raise web.HTTPBadRequest(text="interval: a number of seconds\n") from None
    low, high = INTERVAL_BOUNDS
    interval = min(max(interval, low), high)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        await response.write(f"retry: {int(interval * 2000)}\n\n".encode())
        while not dashboard.closing.is_set():
            body = dashboard.document(loop.time())
            await response.write(b"event: state\ndata: " + body + b"\n\n")
            try:
                await asyncio.wait_for(dashboard.closing.wait(), interval)
            except TimeoutError:
                pass
    except ConnectionResetError:
        pass  # the page went away (aiohttp's ClientConnectionResetError is one)
    return response


def _pretty(request: web.Request) -> bool:
    return request.query.get("pretty", "0").lower() in ("", "1", "true")


async def _help(request: web.Request) -> web.Response:
    """every admin endpoint with what it answers (this list)"""
    rows = endpoints(request.app)
    if _pretty(request) or request.query.get("format") == "json":
        body = [{"method": m, "path": p, "description": d} for m, p, d in rows]
        return web.json_response(body, dumps=lambda b: json.dumps(b, indent=2) + "\n")
    width = max(len(f"{m} {p}") for m, p, _ in rows)
    lines = [f"{f'{m} {p}':<{width}}  {d}".rstrip() for m, p, d in rows]
    return web.Response(text="admin endpoints:\n" + "\n".join(lines) + "\n")


def endpoints(app: web.Application) -> list[tuple[str, str, str]]:
    """``(method, path, description)`` of every route of ``app``, in registration order. The
    description is the handler's docstring (first paragraph), else its module docstring's line
    for ``METHOD /path`` (the admin module lists its own endpoints that way)."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD beside every GET
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or "")
        out.append((route.method, path, _describe(route.handler, route.method, path)))
    return out


def _describe(handler: Callable[..., Any], method: str, path: str) -> str:
    doc = getattr(handler, "__doc__", None)
    if doc:
        return " ".join(doc.strip().split("\n\n")[0].split())
    module = sys.modules.get(getattr(handler, "__module__", ""), None)
    pattern = re.compile(rf"^``{re.escape(method)} {re.escape(path)}(\?[^`]*)?``\s+(.+)$")
    # e.g. "``GET /explain?url=..``   explain a request (``&header=Name:value``)"
    for line in (getattr(module, "__doc__", None) or "").splitlines():
        found = pattern.match(line.strip())
        if found:
            query, text = found.group(1) or "", found.group(2).replace("``", "").strip()
            return f"{query}: {text}" if query else text
    return ""
