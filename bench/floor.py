"""Data path (benchmark): the floor, a minimal forwarder measured beside our gateway and nginx.

``python bench/floor.py --port P --upstream PORT [--h2 --cert C --key K]``

The smallest forwarder that does a proxy's work: one uvloop event loop, ``asyncio.Protocol``,
httptools (llhttp) parsing both ways, keep-alive upstream connections, request and response
heads re-serialised, and nothing else: no routing, timeouts, header rules, retries, metrics,
logging, back-pressure or error handling beyond closing. With ``--h2`` the downstream side is
TLS with ALPN h2 through the same ``h2`` library our gateway uses, configured by the gateway's
own ``h2_configuration`` (header validation off), and upstream HTTP/1.1 as in the ``h2-*``
paths. It is what Python with these libraries costs at the least for the same work, so the
distance from it to our gateway is the price of the gateway's features, and its distance to
nginx is the price of the language and the libraries.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections import deque
from typing import cast

import httptools
import uvloop
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamReset

from gateway_core.proxy.codec.h2_connection import h2_configuration

Reply = tuple[int, list[tuple[bytes, bytes]], bytes]
"""Status, response headers and body from the pod."""
HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"))


class Upstream(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the pod; one request at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done: asyncio.Future[Reply] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("upstream closed"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        done, self.done = self.done, None
        headers, self.headers = self.headers, []
        body = b"".join(self.body)
        self.body.clear()
        self.pool.release(self)
        if done is not None and not done.done():
            done.set_result((self.parser.get_status_code(), headers, body))

    def send(self, head: bytes, done: asyncio.Future[Reply]) -> None:
        self.done = done
        assert self.transport is not None
        self.transport.write(head)


class Pool:
    def __init__(self, loop: asyncio.AbstractEventLoop, port: int) -> None:
        self.loop = loop
        self.port = port
        self.idle: deque[Upstream] = deque()
        self.tasks: set[asyncio.Task[None]] = set()
        """Forwarding tasks in flight (the loop keeps only weak references)."""

    def running(self, task: asyncio.Task[None]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def release(self, conn: Upstream) -> None:
        self.idle.append(conn)

    def lost(self, conn: Upstream) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    async def request(self, head: bytes) -> Reply:
        if self.idle:
            conn = self.idle.pop()
        else:
            _, conn = await self.loop.create_connection(
                lambda: Upstream(self), "127.0.0.1", self.port
            )
        done: asyncio.Future[Reply]
        done = self.loop.create_future()
        conn.send(head, done)
        return await done


def request_head(method: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [b"%s %s HTTP/1.1\r\n" % (method, target)]
    lines += [b"%s: %s\r\n" % (n, v) for n, v in headers if n not in HOP]
    lines.append(b"\r\n")
    return b"".join(lines)


class Http1Down(asyncio.Protocol):
    """A client connection; each request forwarded when it is complete. Pipelined requests
    could be answered out of order (wrk does not pipeline): this is a floor, not a proxy."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        head = request_head(method, self.url, self.headers)
        self.url, self.headers = b"", []
        task = self.loop.create_task(self._forward(head))
        self.pool.running(task)

    async def _forward(self, head: bytes) -> None:
        status, headers, body = await self.pool.request(head)
        out = [b"HTTP/1.1 %d \r\n" % status]
        out += [b"%s: %s\r\n" % (n, v) for n, v in headers if n not in HOP]
        out += [b"\r\n", body]
        assert self.transport is not None
        self.transport.write(b"".join(out))


class H2Down(asyncio.Protocol):
    """A TLS connection speaking HTTP/2 with the ``h2`` library; every stream forwarded on
    an upstream HTTP/1.1 connection of its own from the pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.conn = H2Connection(h2_configuration(client=False))
        self.flushing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.conn.initiate_connection()
        self.flush()

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, RequestReceived):
                task = self.loop.create_task(self._forward(event.stream_id, event.headers or []))
                self.pool.running(task)
            elif isinstance(event, DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, ConnectionTerminated | StreamReset):
                pass
        self.flush()

    def flush(self) -> None:
        assert self.transport is not None
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def flush_soon(self) -> None:
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self.flushing = False
        self.flush()

    async def _forward(self, stream_id: int, raw: list[tuple[bytes, bytes]]) -> None:
        method, path, headers = b"GET", b"/", []
        for name, value in raw:
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                headers.append((b"host", value))
            elif not name.startswith(b":"):
                headers.append((name, value))
        status, resp, body = await self.pool.request(request_head(method, path, headers))
        out = [(b":status", b"%d" % status)]
        out += [(n, v) for n, v in resp if n not in HOP]
        self.conn.send_headers(stream_id, out)
        self.conn.send_data(stream_id, body, end_stream=True)
        self.flush_soon()


async def serve(port: int, upstream: int, tls: ssl.SSLContext | None) -> None:
    loop = asyncio.get_running_loop()
    pool = Pool(loop, upstream)
    if tls is None:
        server = await loop.create_server(lambda: Http1Down(pool), "127.0.0.1", port)
    else:
        server = await loop.create_server(lambda: H2Down(pool), "127.0.0.1", port, ssl=tls)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[2])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", type=int, required=True, help="the pod's port")
    parser.add_argument("--h2", action="store_true", help="TLS + ALPN h2 downstream")
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    args = parser.parse_args(argv)
    tls = None
    if args.h2:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
        tls.set_alpn_protocols(["h2"])
    try:
        uvloop.run(serve(args.port, args.upstream, tls))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
