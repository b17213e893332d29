"""Data path (lab): a plain TCP relay that balances connections, not requests (as kube-proxy does).

Each new client connection goes to the next backend in round-robin order and is then relayed
byte for byte, both ways, until both sides have closed; a half-close is passed on. Nothing
above TCP is looked at, so every request a client sends over one connection (every gRPC call
of one HTTP/2 channel) reaches the same backend: seed 002's reason why gRPC needs a layer-7,
per-request balancer. ``gateway-lab scenario grpc`` puts one in front of cluster-2's gRPC pods
for contrast with the gateway.

    python -m gateway_lab.tcp_relay --listen 127.0.0.1:15051 127.0.2.80:50051 127.0.2.81:50051

A backend that refuses the connection is not retried (kube-proxy's iptables mode does not
either): the client's connection is closed and the failure counted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Callable, Sequence

CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0
Address = tuple[str, int]
OnConnection = Callable[[Address, Address], None]


class TcpRelay:
    """Listen, then relay each accepted connection to the next backend (round robin)."""

    def __init__(
        self,
        backends: Sequence[Address],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        on_connection: OnConnection | None = None,
    ) -> None:
        if not backends:
            raise ValueError("a relay needs at least one backend")
        self.backends = tuple(backends)
        self.connect_timeout = connect_timeout
        self.on_connection = on_connection
        """Called with ``(client, backend)`` for every relayed connection."""
        self.connections: Counter[Address] = Counter()
        """Connections relayed per backend."""
        self.failed = 0
        """Connections closed because their backend could not be reached."""
        self._next = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> Address:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the relay is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def pick(self) -> Address:
        backend = self.backends[self._next % len(self.backends)]
        self._next += 1
        return backend

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Address:
        self._server = await asyncio.start_server(self._handle, host, port)
        return self.address

    async def close(self) -> None:
        """Stop listening and close every relayed connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._relay(reader, writer, self.pick())
        finally:
            self._writers.discard(writer)
            await _close(writer)
            self._handlers.discard(task)

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, backend: Address
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*backend), self.connect_timeout
            )
        except (OSError, TimeoutError):
            self.failed += 1
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        self.connections[backend] += 1
        if self.on_connection is not None:
            peer = writer.get_extra_info("peername")
            self.on_connection((str(peer[0]), int(peer[1])), backend)
        try:
            await asyncio.gather(
                _pipe(reader, up_writer, writer), _pipe(up_reader, writer, up_writer)
            )
        finally:
            self._writers.discard(up_writer)
            await _close(up_writer)


async def _pipe(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, src_writer: asyncio.StreamWriter
) -> None:
    """Copy until EOF, then half-close ``dst``; an error on either side resets both."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof() and not dst.is_closing():
            dst.write_eof()
    except (ConnectionError, OSError):
        src_writer.transport.abort()
        dst.transport.abort()


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close after what is buffered is sent; reset if the peer does not take it in time."""
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except (ConnectionError, OSError, TimeoutError):
        writer.transport.abort()


def _address(text: str) -> Address:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


async def serve(listen: Address, backends: Sequence[Address]) -> int:
    def show(client: Address, backend: Address) -> None:
        print(f"connection from {client[0]}:{client[1]} -> {backend[0]}:{backend[1]}", flush=True)

    relay = TcpRelay(backends, on_connection=show)
    try:
        host, port = await relay.start(*listen)
    except OSError as exc:
        print(f"tcp_relay: cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}", flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"relaying {host}:{port} to {', '.join(f'{h}:{p}' for h, p in backends)}", flush=True)
    try:
        await stop.wait()
    finally:
        await relay.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway_lab.tcp_relay", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 0), help="HOST:PORT")
    parser.add_argument("backends", nargs="+", type=_address, metavar="HOST:PORT")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    return asyncio.run(serve(args.listen, args.backends))


if __name__ == "__main__":
    sys.exit(main())
