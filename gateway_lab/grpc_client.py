"""Control path (lab): ``gateway-lab grpc call|health`` — the lab's small gRPC client.

    gateway-lab grpc call [--authority HOST[:PORT]] [--selector CLUSTER] [--tls [--cacert FILE]]
                          [--method hello|server-stream|client-stream|bidi] [--count N]
                          [--name TEXT] [--timeout S] [--show-metadata] TARGET
    gateway-lab grpc health [--service NAME] [--authority ...] [--tls [--cacert FILE]] TARGET

TARGET is ``host:port``. Every call of a run goes over ONE grpcio channel (one HTTP/2
connection: the channel keeps its own subchannel pool), so what a run shows is how a proxy
spreads the requests of one connection. ``--authority`` overrides ``:authority`` (and, with
``--tls``, the name the certificate is checked against and sent as SNI), which is how the
client is pointed at 127.0.0.1:8080 while naming ``grpc.example.com``, as curl's ``--resolve``
does. ``--selector`` sends the ``x-cluster-selector`` metadata Tier-1 routes on.

``--count N``: ``hello`` makes N unary calls; ``server-stream`` asks one call for N replies;
``client-stream`` sends N messages in one call (one reply); ``bidi`` sends N messages in one
call, reading each reply before sending the next. Each reply is printed with the pod that
served it (``--show-metadata``: and the request metadata the pod received, which shows what
the gateways added), then the replies per pod. Exit 0 when every call succeeded; 1 with the
gRPC status and details otherwise (never a traceback); ``health`` exits 0 only for
``SERVING``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from gateway_lab.proto import demo_pb2, demo_pb2_grpc

METHODS = ("hello", "server-stream", "client-stream", "bidi")
SELECTOR_KEY = "x-cluster-selector"
MAX_COUNT = 10_000
DEFAULT_TIMEOUT = 10.0
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

OnReply = Callable[[demo_pb2.HelloReply], None]


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """Where and how to connect: ``target`` host:port, optional authority and TLS."""

    target: str
    authority: str | None = None
    tls: bool = False
    cacert: Path | None = None
    """PEM roots for ``tls``; None uses the system's roots."""


def open_channel(spec: ChannelSpec) -> grpc.aio.Channel:
    """One channel with its own subchannel pool: calls on it share one connection."""
    options: list[tuple[str, str | int]] = [("grpc.use_local_subchannel_pool", 1)]
    if spec.authority:
        options.append(("grpc.default_authority", spec.authority))
    if not spec.tls:
        return grpc.aio.insecure_channel(spec.target, options=options)
    if spec.authority:
        options.append(("grpc.ssl_target_name_override", authority_host(spec.authority)))
    roots = spec.cacert.read_bytes() if spec.cacert is not None else None
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.aio.secure_channel(spec.target, credentials, options=options)


def authority_host(authority: str) -> str:
    """``grpc.example.com`` of ``grpc.example.com:8443`` (and ``::1`` of ``[::1]:8443``)."""
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    host, sep, port = authority.rpartition(":")
    return host if sep and port.isdigit() else authority


def selector_metadata(selector: str | None) -> tuple[tuple[str, str], ...]:
    return ((SELECTOR_KEY, selector),) if selector else ()


def rpc_error(exc: grpc.aio.AioRpcError) -> str:
    """``UNAVAILABLE: failed to connect …``: the status name and details of a failed call."""
    return f"{exc.code().name}: {exc.details() or '(no details)'}"


async def run_calls(
    channel: grpc.aio.Channel,
    method: str,
    count: int,
    *,
    name: str = "world",
    metadata: Sequence[tuple[str, str]] = (),
    call_timeout: float = DEFAULT_TIMEOUT,
    on_reply: OnReply | None = None,
) -> list[demo_pb2.HelloReply]:
    """Make ``method`` calls as ``--count`` describes; raises ``grpc.aio.AioRpcError``.

    ``call_timeout`` is each call's gRPC deadline (``grpc-timeout``), in seconds."""
    stub = demo_pb2_grpc.DemoStub(channel)
    md = tuple(metadata)
    replies: list[demo_pb2.HelloReply] = []

    def got(reply: demo_pb2.HelloReply) -> None:
        replies.append(reply)
        if on_reply is not None:
            on_reply(reply)

    request = demo_pb2.HelloRequest(name=name)
    if method == "hello":
        for _ in range(count):
            got(await stub.Hello(request, metadata=md, timeout=call_timeout))
    elif method == "server-stream":
        stream_request = demo_pb2.StreamRequest(name=name, count=count)
        async for reply in stub.ServerStream(stream_request, metadata=md, timeout=call_timeout):
            got(reply)
    elif method == "client-stream":
        got(await stub.ClientStream(_requests(request, count), metadata=md, timeout=call_timeout))
    elif method == "bidi":
        call = stub.Bidi(metadata=md, timeout=call_timeout)
        for _ in range(count):
            await call.write(request)
            answer = await call.read()
            # read() raises AioRpcError when the call failed; EOF here means it ended early.
            if not isinstance(answer, demo_pb2.HelloReply):
                raise RuntimeError("the bidi stream ended before its reply")
            got(answer)
        await call.done_writing()
        if await call.read() is not grpc.aio.EOF:
            raise RuntimeError("the bidi stream sent more replies than requests")
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return replies


async def _requests(
    request: demo_pb2.HelloRequest, count: int
) -> AsyncIterator[demo_pb2.HelloRequest]:
    for _ in range(count):
        yield request


async def check_health(spec: ChannelSpec, service: str = "", call_timeout: float = 2.0) -> str:
    """The ``grpc.health.v1`` status name (``SERVING`` …) of ``service`` at ``spec``."""
    channel = open_channel(spec)
    try:
        check = channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        request = health_pb2.HealthCheckRequest(service=service)
        reply = await check(request, timeout=call_timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    finally:
        await channel.close()


def describe(number: int, reply: demo_pb2.HelloReply, metadata: bool = False) -> str:
    """``reply 3: Hello, world, from grpc-demo-v1-1 (cluster-2) [pod …, cluster …, …]``."""
    pod = reply.pod
    extra = f", {reply.received} received" if reply.received else ""
    line = (
        f"reply {number}: {reply.message} "
        f"[pod {pod.name}, cluster {pod.cluster}, version {pod.version}{extra}]"
    )
    if metadata:
        line += "".join(f"\n  {k}: {v}" for k, v in sorted(reply.metadata.items()))
    return line


def per_pod(replies: Sequence[demo_pb2.HelloReply]) -> Counter[str]:
    return Counter(r.pod.name for r in replies)


# ---- command line -----------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``grpc call`` and ``grpc health`` under ``gateway-lab``."""
    grpc_parser = sub.add_parser("grpc", help="call the lab's gRPC demo service (one channel)")
    verbs = grpc_parser.add_subparsers(dest="grpc_command", required=True)
    call = verbs.add_parser("call", help="call demo.v1.Demo and count the replies per pod")
    _channel_args(call)
    call.add_argument("--selector", help="x-cluster-selector metadata, e.g. cluster-2")
    call.add_argument("--method", choices=METHODS, default="hello")
    call.add_argument("--count", type=_count, default=1, help="calls or messages (default 1)")
    call.add_argument("--name", default="world", help="the name sent in each request")
    call.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per call (s)")
    call.add_argument(
        "--show-metadata", action="store_true", help="print the metadata each pod received"
    )
    check = verbs.add_parser("health", help="grpc.health.v1 Check; exit 0 when SERVING")
    _channel_args(check)
    check.add_argument("--service", default="", help="service name (default: the server)")
    check.add_argument("--timeout", type=float, default=2.0, help="seconds")


def _channel_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="HOST:PORT to connect to")
    parser.add_argument("--authority", help=":authority (and TLS name), e.g. grpc.example.com")
    parser.add_argument("--tls", action="store_true", help="TLS (ALPN h2) instead of h2c")
    parser.add_argument("--cacert", type=Path, help="CA bundle for --tls (PEM)")


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_COUNT}")
    return value


def run(args: argparse.Namespace) -> int:
    if args.cacert is not None and not args.tls:
        print("gateway-lab grpc: --cacert needs --tls", file=sys.stderr)
        return 2
    spec = ChannelSpec(args.target, args.authority, args.tls, args.cacert)
    try:
        if args.grpc_command == "health":
            return asyncio.run(_health(spec, args))
        return asyncio.run(_call(spec, args))
    except OSError as exc:
        print(f"gateway-lab grpc: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return 2


async def _health(spec: ChannelSpec, args: argparse.Namespace) -> int:
    try:
        status = await check_health(spec, args.service, args.timeout)
    except grpc.aio.AioRpcError as exc:
        print(f"gateway-lab grpc: health check failed: {rpc_error(exc)}", file=sys.stderr)
        return 1
    print(status)
    return 0 if status == "SERVING" else 1


async def _call(spec: ChannelSpec, args: argparse.Namespace) -> int:
    replies: list[demo_pb2.HelloReply] = []

    def show(reply: demo_pb2.HelloReply) -> None:
        replies.append(reply)
        print(describe(len(replies), reply, args.show_metadata), flush=True)

    channel = open_channel(spec)
    code = 0
    try:
        await run_calls(
            channel,
            args.method,
            args.count,
            name=args.name,
            metadata=selector_metadata(args.selector),
            call_timeout=args.timeout,
            on_reply=show,
        )
    except grpc.aio.AioRpcError as exc:
        print(f"gateway-lab grpc: {args.method} failed: {rpc_error(exc)}", file=sys.stderr)
        code = 1
    except RuntimeError as exc:
        print(f"gateway-lab grpc: {args.method} failed: {exc}", file=sys.stderr)
        code = 1
    finally:
        await channel.close()
    counts = per_pod(replies)
    print(f"replies per pod ({len(replies)} replies over one channel):")
    clusters = {r.pod.name: r.pod.cluster for r in replies}
    for pod, n in sorted(counts.items()):
        print(f"  {pod:<20} {clusters[pod]:<12} {n}")
    return code
