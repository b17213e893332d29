"""Data path (benchmark): the gRPC "pod", ``python bench/grpc_pod.py --port 0``.

One unary method, ``/bench.v1.Bench/Ping``, answering every call with the same small message.
It uses grpc's generic handler API with no serialisers, so requests and responses are raw
bytes and no generated code is needed. The response is the protobuf encoding of a message
whose field 1 is the string ``"ok"`` (``message Pong { string text = 1; }``), so any protobuf
client can decode it; the request is read as opaque bytes. The server is grpc.aio on one event
loop, like one worker of the nginx pod. It prints ``listening on 127.0.0.1:<port>`` once it
accepts calls and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

import grpc
import grpc.aio

SERVICE = "bench.v1.Bench"
METHOD = "Ping"
FULL_METHOD = f"/{SERVICE}/{METHOD}"
REQUEST = b"\x0a\x04ping"
"""What the load client sends: field 1 = "ping" (any bytes are accepted)."""
RESPONSE = b"\x0a\x02ok"
"""Field 1 (string) = "ok": the gRPC counterpart of the HTTP pod's ``200 ok``."""


async def _ping(_request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return RESPONSE


def handler() -> grpc.GenericRpcHandler:
    """The generic handler for ``/bench.v1.Bench/Ping`` (bytes in, bytes out)."""
    method: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(_ping)
    return grpc.method_handlers_generic_handler(SERVICE, {METHOD: method})


async def start(host: str, port: int) -> tuple[grpc.aio.Server, int]:
    """A started server on ``host:port`` (0 picks a free port) and the port it listens on.
    SO_REUSEPORT is off, so a port already in use is an error rather than a shared socket."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((handler(),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as exc:  # grpcio's way of saying that bind() failed
        raise OSError(f"cannot listen on {host}:{port}: {exc}") from exc
    await server.start()
    return server, bound


async def serve(host: str, port: int) -> None:
    server, bound = await start(host, port)
    print(f"listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1.0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/grpc_pod.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    a = p.parse_args(argv)
    try:
        asyncio.run(serve(a.host, a.port))
    except OSError as exc:
        print(f"grpc_pod: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
