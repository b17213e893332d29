"""Data path (benchmark): an OTLP/HTTP trace sink, ``python bench/otlp_sink.py --port 0``.

Accepts ``POST /v1/traces`` and answers an empty ``ExportTraceServiceResponse`` (an empty
protobuf message, zero bytes) without decoding the body: the benchmark measures what tracing
costs the gateway, not the collector. Prints ``listening on 127.0.0.1:<port>`` once it accepts
requests and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web


async def _export(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")


async def serve(host: str, port: int) -> None:
    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", _export)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server: Any = site._server  # aiohttp has no public accessor for the bound port
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/otlp_sink.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    asyncio.run(serve(a.host, a.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
