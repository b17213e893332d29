"""Tests: real grpcio servers (pods) and a bytes-level client for the functional gRPC tests.

The service ``test.Echo`` carries raw bytes (no protobuf needed): every reply names the pod,
so a test can count where each call went. Every pod also serves ``grpc.health.v1`` (``SERVING``
for ``""`` and ``test.Echo`` until a test says otherwise through ``GrpcPod.health``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "test.Echo"


@dataclass
class GrpcPod:
    name: str
    port: int
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    calls: int = 0

    async def set_serving(self, serving: bool) -> None:
        """Health of the server and of ``test.Echo``: SERVING or NOT_SERVING."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ("", SERVICE):
            await self.health.set(service, status)


def _handlers(pod: GrpcPod) -> grpc.GenericRpcHandler:
    name = pod.name.encode()

    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        pod.calls += 1
        meta = dict(context.invocation_metadata() or ())
        if "fail-with" in meta:
            await context.abort(grpc.StatusCode[str(meta["fail-with"])], "failed on purpose")
        if "sleep" in meta:
            await asyncio.sleep(float(meta["sleep"]))
        context.set_trailing_metadata((("x-pod", pod.name),))
        return name + b":" + request

    async def server_stream(
        request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        pod.calls += 1
        for i in range(int(request or b"3")):
            yield name + b":%d" % i

    async def client_stream(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        pod.calls += 1
        total = 0
        async for message in requests:
            total += len(message)
        return name + b":%d" % total

    async def bidi(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        pod.calls += 1
        async for message in requests:
            yield name + b":" + message

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        },
    )


async def start_pod(
    name: str, *, credentials: grpc.ServerCredentials | None = None, port: int = 0
) -> GrpcPod:
    """A pod on 127.0.0.1 (``port`` 0 picks one), plaintext or TLS with ``credentials``."""
    server = grpc.aio.server()
    address = f"127.0.0.1:{port}"
    if credentials is not None:
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    pod = GrpcPod(name, port, server, health.aio.HealthServicer())
    server.add_generic_rpc_handlers((_handlers(pod),))
    health_pb2_grpc.add_HealthServicer_to_server(pod.health, server)
    await server.start()
    await pod.set_serving(True)
    return pod


class EchoClient:
    """One channel (one HTTP/2 connection) for all calls."""

    def __init__(self, target: str, *, authority: str | None = None, **options: Any) -> None:
        opts: list[tuple[str, Any]] = [("grpc.enable_retries", 0)]
        if authority is not None:
            opts.append(("grpc.default_authority", authority))
        credentials = options.pop("credentials", None)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(target, credentials, options=opts)
        else:
            self.channel = grpc.aio.insecure_channel(target, options=opts)
        self.unary: Callable[..., Any] = self.channel.unary_unary(f"/{SERVICE}/Unary")
        self.server_stream: Callable[..., Any] = self.channel.unary_stream(
            f"/{SERVICE}/ServerStream"
        )
        self.client_stream: Callable[..., Any] = self.channel.stream_unary(
            f"/{SERVICE}/ClientStream"
        )
        self.bidi: Callable[..., Any] = self.channel.stream_stream(f"/{SERVICE}/Bidi")

    async def close(self) -> None:
        await self.channel.close()
