"""Data path (lab): the gRPC demo pod — ``demo.v1.Demo`` and ``grpc.health.v1.Health`` over h2c.

A grpcio asyncio server on one address (plaintext HTTP/2 with prior knowledge, as gRPC
services in a cluster listen behind their mesh). Every reply carries a ``pod`` message with
the pod's name, cluster, version and locality, so a client counts how its calls were spread.
The standard health service answers ``SERVING`` for the server (``""``) and for
``demo.v1.Demo`` until the pod stops, then ``NOT_SERVING`` during its grace period.

The lab runs these pods inside the cluster's pod group (``gateway_lab.pods``, role ``grpc`` in
topology.yaml); ``python -m gateway_lab.demo_pod --role grpc --listen HOST:PORT ...`` runs one
alone (the compose lab does).
"""

from __future__ import annotations

import asyncio
import errno
import json
import signal
from collections.abc import AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway_lab.demo_pod import PodConfig
from gateway_lab.proto import demo_pb2, demo_pb2_grpc

SERVICE = "demo.v1.Demo"
MAX_STREAM_REPLIES = 10_000
"""``ServerStream`` answers at most this many replies; more is ``INVALID_ARGUMENT``."""
STOP_GRACE = 2.0

Context = grpc.aio.ServicerContext[object, object]


class DemoService(demo_pb2_grpc.DemoServicer):
    """The four RPC kinds; every reply names this pod."""

    def __init__(self, pod: demo_pb2.Pod) -> None:
        self.pod = pod
        self.calls = 0

    def _reply(
        self, context: Context, name: str, sequence: int = 1, received: int = 0
    ) -> demo_pb2.HelloReply:
        return demo_pb2.HelloReply(
            message=f"Hello, {name or 'world'}, from {self.pod.name} ({self.pod.cluster})",
            pod=self.pod,
            sequence=sequence,
            received=received,
            metadata=received_metadata(context),
        )

    async def Hello(self, request: demo_pb2.HelloRequest, context: Context) -> demo_pb2.HelloReply:
        self.calls += 1
        return self._reply(context, request.name)

    async def ServerStream(
        self, request: demo_pb2.StreamRequest, context: Context
    ) -> AsyncIterator[demo_pb2.HelloReply]:
        self.calls += 1
        if request.count > MAX_STREAM_REPLIES:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"count {request.count} is over the limit of {MAX_STREAM_REPLIES}",
            )
        for i in range(request.count):
            yield self._reply(context, request.name, sequence=i + 1)

    async def ClientStream(
        self, request_iterator: AsyncIterator[demo_pb2.HelloRequest], context: Context
    ) -> demo_pb2.HelloReply:
        self.calls += 1
        received = 0
        name = ""
        async for request in request_iterator:
            received += 1
            name = request.name
        return self._reply(context, name, received=received)

    async def Bidi(
        self, request_iterator: AsyncIterator[demo_pb2.HelloRequest], context: Context
    ) -> AsyncIterator[demo_pb2.HelloReply]:
        self.calls += 1
        received = 0
        async for request in request_iterator:
            received += 1
            yield self._reply(context, request.name, sequence=received, received=received)


class GrpcPod:
    """A started gRPC demo pod: its bound port, its services, and ``cleanup()`` to stop it."""

    def __init__(
        self,
        config: PodConfig,
        server: grpc.aio.Server,
        port: int,
        demo: DemoService,
        health_servicer: health.aio.HealthServicer,
    ) -> None:
        self.config = config
        self.server = server
        self.port = port
        self.demo = demo
        self.health = health_servicer

    async def cleanup(self, grace: float = STOP_GRACE) -> None:
        """Health turns NOT_SERVING, calls in flight get ``grace`` seconds, then it stops."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def received_metadata(context: Context) -> dict[str, str]:
    """Text metadata of the call; repeated keys joined with ", " as HTTP joins headers."""
    out: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if key.endswith("-bin") or not isinstance(value, str):
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def pod_message(config: PodConfig) -> demo_pb2.Pod:
    return demo_pb2.Pod(
        name=config.pod,
        cluster=config.cluster,
        version=config.version,
        locality=str(config.locality),
    )


async def start_grpc_pod(config: PodConfig) -> GrpcPod:
    """Serve ``config.host:config.port`` (port 0 picks one: ``GrpcPod.port``)."""
    # No SO_REUSEPORT: a second server on a busy port must fail, as the HTTP pods do.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    demo = DemoService(pod_message(config))
    demo_pb2_grpc.add_DemoServicer_to_server(demo, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    host = f"[{config.host}]" if ":" in config.host else config.host
    try:
        port = server.add_insecure_port(f"{host}:{config.port}")
    except RuntimeError as exc:
        raise OSError(errno.EADDRINUSE, f"gRPC server cannot bind {host}:{config.port}") from exc
    await server.start()
    for service in ("", SERVICE):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    return GrpcPod(config, server, port, demo, health_servicer)


async def serve(config: PodConfig) -> None:
    """Run until SIGINT/SIGTERM; prints the bound address so a parent can use port 0."""
    pod = await start_grpc_pod(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    info = {"role": config.role, "pod": config.pod, "host": config.host, "port": pod.port}
    print(json.dumps({"listening": info}), flush=True)
    try:
        await stop.wait()
    finally:
        await pod.cleanup()
