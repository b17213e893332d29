"""Tests: the gRPC demo pod with a real grpcio client on 127.0.0.1 — four RPC kinds and health."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import grpc
import pytest

from gateway_core.snapshot import Locality
from gateway_lab.demo_pod import PodConfig
from gateway_lab.grpc_client import ChannelSpec, check_health, open_channel, run_calls
from gateway_lab.grpc_pod import MAX_STREAM_REPLIES, GrpcPod, start_grpc_pod
from gateway_lab.pods import start_group, stop_group
from gateway_lab.proto import demo_pb2, demo_pb2_grpc
from gateway_lab.topology import PodInstance
from tests.conftest import free_port

CONFIG = PodConfig(
    role="grpc",
    cluster="cluster-9",
    pod="grpc-demo-v3-1",
    version="v3",
    locality=Locality.parse("r1/z1"),
)


@pytest.fixture
async def pod() -> AsyncIterator[GrpcPod]:
    started = await start_grpc_pod(CONFIG)
    try:
        yield started
    finally:
        await started.cleanup(grace=0.5)


@pytest.fixture
async def channel(pod: GrpcPod) -> AsyncIterator[grpc.aio.Channel]:
    ch = open_channel(ChannelSpec(f"127.0.0.1:{pod.port}"))
    try:
        yield ch
    finally:
        await ch.close()


def assert_from_pod(reply: demo_pb2.HelloReply) -> None:
    assert (reply.pod.name, reply.pod.cluster, reply.pod.version, reply.pod.locality) == (
        "grpc-demo-v3-1",
        "cluster-9",
        "v3",
        "r1/z1",
    )


async def test_unary_hello_names_the_pod(pod: GrpcPod, channel: grpc.aio.Channel) -> None:
    """Hello answers once per call, greeting the name and naming the pod that served it."""
    stub = demo_pb2_grpc.DemoStub(channel)
    reply = await stub.Hello(demo_pb2.HelloRequest(name="ana"), timeout=5)
    assert reply.message == "Hello, ana, from grpc-demo-v3-1 (cluster-9)"
    assert_from_pod(reply)
    assert pod.port > 0 and pod.demo.calls == 1


async def test_server_stream_sends_count_replies(channel: grpc.aio.Channel) -> None:
    """ServerStream: one request, `count` replies numbered 1..count, each from the pod."""
    replies = await run_calls(channel, "server-stream", 5, name="bo")
    assert [r.sequence for r in replies] == [1, 2, 3, 4, 5]
    for reply in replies:
        assert_from_pod(reply)


async def test_server_stream_over_the_limit_is_invalid_argument(channel: grpc.aio.Channel) -> None:
    """More than MAX_STREAM_REPLIES is refused with INVALID_ARGUMENT, not streamed."""
    stub = demo_pb2_grpc.DemoStub(channel)
    call = stub.ServerStream(demo_pb2.StreamRequest(count=MAX_STREAM_REPLIES + 1), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_client_stream_counts_what_arrived(channel: grpc.aio.Channel) -> None:
    """ClientStream: seven requests in, one reply saying seven were received."""
    [reply] = await run_calls(channel, "client-stream", 7, name="cy")
    assert reply.received == 7
    assert reply.message == "Hello, cy, from grpc-demo-v3-1 (cluster-9)"
    assert_from_pod(reply)


async def test_bidi_answers_each_message_in_turn(channel: grpc.aio.Channel) -> None:
    """Bidi: each reply is read before the next request is written (a true ping-pong)."""
    stub = demo_pb2_grpc.DemoStub(channel)
    call = stub.Bidi(timeout=5)
    for i in range(1, 4):
        await call.write(demo_pb2.HelloRequest(name=f"n{i}"))
        reply = await call.read()
        assert isinstance(reply, demo_pb2.HelloReply)
        assert (reply.sequence, reply.message.split(",")[1].strip()) == (i, f"n{i}")
        assert_from_pod(reply)
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() is grpc.StatusCode.OK


async def test_health_is_serving_then_not_serving_while_stopping(pod: GrpcPod) -> None:
    """grpc.health.v1: SERVING for the server and demo.v1.Demo; NOT_SERVING once stopping."""
    spec = ChannelSpec(f"127.0.0.1:{pod.port}")
    assert await check_health(spec) == "SERVING"
    assert await check_health(spec, "demo.v1.Demo") == "SERVING"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check_health(spec, "no.such.Service")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    await pod.health.enter_graceful_shutdown()
    assert await check_health(spec) == "NOT_SERVING"


async def test_a_busy_port_fails_instead_of_sharing_it() -> None:
    """No SO_REUSEPORT: a second pod on a taken port raises OSError like the HTTP pods."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match="cannot bind"):
            await start_grpc_pod(PodConfig(role="grpc", port=port))


async def test_pod_group_starts_grpc_pods_beside_http_pods() -> None:
    """A cluster's pod group runs role grpc entries as gRPC servers on their own sockets."""
    grpc_port, http_port = free_port(), free_port()

    def instance(name: str, role: str, port: int) -> PodInstance:
        return PodInstance(name, name, role, "v1", "cluster-9", "r/z", "127.0.0.1", port, {})

    runners = await start_group(
        [instance("grpc-demo-v1-0", "grpc", grpc_port), instance("echo-v1-0", "echo", http_port)]
    )
    try:
        channel = open_channel(ChannelSpec(f"127.0.0.1:{grpc_port}"))
        try:
            [reply] = await run_calls(channel, "hello", 1)
        finally:
            await channel.close()
        assert (reply.pod.name, reply.pod.cluster) == ("grpc-demo-v1-0", "cluster-9")
    finally:
        await stop_group(runners)
    with socket.socket() as again:
        again.bind(("127.0.0.1", grpc_port))  # released on stop
