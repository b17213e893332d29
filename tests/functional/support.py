"""Functional-test support: raw HTTP/1.1 on sockets, a capturing upstream, and Istio YAML.

The raw reader is a small independent HTTP/1.1 parser (not llhttp), so what the gateway emits is
checked by a second implementation. ``CaptureUpstream`` records every request byte for byte and
answers with whatever a test's handler writes, which is how upstream faults are staged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.helpers import GatewayHarness

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


class _Fields:
    """Field lookups shared by the raw request and response (dataclasses declare ``headers``)."""

    headers: list[tuple[bytes, bytes]]

    def header(self, name: bytes) -> bytes | None:
        """The first value of field ``name`` (lower case), or None."""
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


@dataclass
class RawResponse(_Fields):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    complete: bool
    """False when the connection ended before the framing said the body was over."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawRequest(_Fields):
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw_head: bytes
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _parse_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    out = []
    for line in lines:
        name, _, value = line.partition(b":")
        out.append((name.strip().lower(), value.strip()))
    return out


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool, list[bytes]]:
    body = bytearray()
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                trailers = []
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    trailers.append(line[:-2])
                return bytes(body), True, trailers
            body += await reader.readexactly(size)
            if await reader.readexactly(2) != b"\r\n":
                return bytes(body), False, []
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        if isinstance(exc, asyncio.IncompleteReadError):
            body += exc.partial
        return bytes(body), False, []


async def read_response(
    reader: asyncio.StreamReader, *, head: bool = False, within: float = 5.0
) -> RawResponse:
    """One response; raises ``EOFError`` when the connection closes before a status line."""
    async with asyncio.timeout(within):
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise EOFError(exc.partial) from None
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = _parse_fields(lines[1:])
        resp = RawResponse(status, headers, b"", True)
        if head or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header(b"transfer-encoding")
        length = resp.header(b"content-length")
        if te is not None and b"chunked" in te.lower():
            resp.body, resp.complete, _ = await _read_chunked(reader)
        elif length is not None:
            try:
                resp.body = await reader.readexactly(int(length))
            except asyncio.IncompleteReadError as exc:
                resp.body, resp.complete = exc.partial, False
        else:
            resp.body = await reader.read(-1)
        return resp


async def read_request(reader: asyncio.StreamReader) -> RawRequest | None:
    """One complete request as an upstream sees it; None at EOF (clean, or mid-request:
    an incomplete request never counts as received)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = raw[:-4].split(b"\r\n")
    method, target, version = lines[0].split(b" ", 2)
    req = RawRequest(method, target, version, _parse_fields(lines[1:]), b"", raw)
    te = req.header(b"transfer-encoding")
    length = req.header(b"content-length")
    if te is not None and b"chunked" in te.lower():
        req.body, complete, trailer_lines = await _read_chunked(reader)
        if not complete:
            return None
        req.trailers = _parse_fields(trailer_lines)
    elif length is not None:
        try:
            req.body = await reader.readexactly(int(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
    return req


async def is_closed(reader: asyncio.StreamReader, within: float = 2.0) -> bool:
    """True when the peer closed (EOF or reset) within ``within`` s without sending more bytes."""
    try:
        async with asyncio.timeout(within):
            data = await reader.read(1)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return data == b""


@contextlib.asynccontextmanager
async def connect(
    port: int, host: str = "127.0.0.1"
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def send_raw(
    port: int,
    data: bytes,
    *,
    count: int = 1,
    head: bool = False,
    within: float = 5.0,
    close_wait: float = 1.0,
) -> tuple[list[RawResponse], bool]:
    """Send ``data`` on a fresh connection; read up to ``count`` responses; report whether the
    gateway closed the connection within ``close_wait`` seconds (0: don't wait, report False)."""
    async with connect(port) as (reader, writer):
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        responses: list[RawResponse] = []
        for _ in range(count):
            try:
                responses.append(await read_response(reader, head=head, within=within))
            except (EOFError, ConnectionError):
                return responses, True
        return responses, close_wait > 0 and await is_closed(reader, close_wait)


async def get(
    port: int, target: str = "/", *, host: str = "h", headers: dict[str, str] | None = None
) -> RawResponse:
    """A simple GET on a fresh connection."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode()
    responses, _ = await send_raw(port, data, close_wait=0)
    return responses[0]


async def metric_samples(admin: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the admin server's ``/stats/prometheus``, by (name, sorted labels
    without ``tier``)."""
    async with aiohttp.ClientSession() as session, session.get(admin + "/stats/prometheus") as r:
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "tier"))
            out[(sample.name, labels)] = sample.value
    return out


Handler = Callable[[RawRequest, asyncio.StreamWriter], Awaitable[bool]]


async def ok_handler(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    return True


class CaptureUpstream:
    """A raw upstream: records every request and lets ``handler`` write the answer.

    The handler returns False to close the connection after it wrote its answer. With ``tls``
    it terminates TLS with that context.
    """

    def __init__(self, handler: Handler = ok_handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.raw_bytes = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.received = asyncio.Event()

    async def start(self) -> CaptureUpstream:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, limit=1 << 20, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    break
                self.requests.append(req)
                self.raw_bytes += req.raw_head
                self.received.set()
                if not await self.handler(req, writer):
                    break
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def capture_upstream(
    handler: Handler = ok_handler, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[CaptureUpstream]:
    up = await CaptureUpstream(handler, tls).start()
    try:
        yield up
    finally:
        await up.close()


def access_lines(harness: GatewayHarness) -> list[dict[str, Any]]:
    """The access log lines a gateway wrote to its ``access_log`` file, flushed first."""
    assert harness.gateway.runtime.access_log.sync(), "the access log writer did not catch up"
    path = Path(harness.settings.access_log)
    return [json.loads(line) for line in path.read_text().splitlines()]


def service_entry(
    host: str,
    ports: list[int],
    *,
    name: str | None = None,
    labels: list[dict[str, str]] | None = None,
    protocol: str = "HTTP",
) -> str:
    """A STATIC ServiceEntry with one 127.0.0.1 endpoint per port (``labels`` per endpoint);
    its port 80 speaks ``protocol`` (``HTTP``, ``HTTP2``, ``GRPC``) and is named after it."""
    port_name = protocol.lower()
    endpoints = "\n".join(
        f"  - address: 127.0.0.1\n    ports: {{{port_name}: {p}}}"
        + (f"\n    labels: {labels[i]}" if labels else "")
        for i, p in enumerate(ports)
    )
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name or host.replace(".", "-")}}}
spec:
  hosts: [{host}]
  ports: [{{number: 80, name: {port_name}, protocol: {protocol}}}]
  resolution: STATIC
  endpoints:
{endpoints}
"""


def gateway_yaml(
    port: int, *, hosts: str = '["*"]', extra_servers: str = "", credential: str | None = None
) -> str:
    """Gateway ``gw`` with one server on ``port``: HTTP, or HTTPS (``SIMPLE`` TLS with the
    ``credentialName`` files) when ``credential`` is given."""
    if credential is None:
        server = f"  - port: {{number: {port}, name: http, protocol: HTTP}}\n    hosts: {hosts}\n"
    else:
        server = (
            f"  - port: {{number: {port}, name: https, protocol: HTTPS}}\n    hosts: {hosts}\n"
            f"    tls: {{mode: SIMPLE, credentialName: {credential}}}\n"
        )
    return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  servers:
{server}{extra_servers}"""


def config(
    port: int,
    http_rules: str,
    services: dict[str, list[int]],
    *,
    vs_hosts: str = '["*"]',
    extra: str = "",
    labels: dict[str, list[dict[str, str]]] | None = None,
    gateway_hosts: str = '["*"]',
    credential: str | None = None,
) -> str:
    """A Gateway on ``port`` (``gateway_yaml``), one VirtualService with ``http_rules`` (YAML
    list items indented by two spaces) and a STATIC ServiceEntry per service host."""
    vs = f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs}}
spec:
  hosts: {vs_hosts}
  gateways: [gw]
  http:
{http_rules}
"""
    entries = "".join(
        service_entry(h, p, labels=(labels or {}).get(h)) for h, p in services.items()
    )
    gateway = gateway_yaml(port, hosts=gateway_hosts, credential=credential)
    return gateway + vs + entries + extra


def lab_certs(directory: Path) -> Path:
    """The lab PKI (CA, server credentials, the tier1 client certificate) under ``directory``."""
    from certs.generate import generate_lab_certs

    generate_lab_certs(directory)
    return directory


def tls_gateway_yaml(
    http_port: int, https_port: int, *, redirect: bool = False, mutual_port: int = 0
) -> str:
    """HTTP (optionally httpsRedirect) and HTTPS servers for bookinfo.example.com and
    httpbin.example.com (two certificates on one port, picked by SNI); with ``mutual_port`` a
    MUTUAL server too. Every host answers a directResponse naming the host."""
    redirect_tls = "\n    tls: {httpsRedirect: true}" if redirect else ""
    mutual = (
        f"""
  - port: {{number: {mutual_port}, name: https-mtls, protocol: HTTPS}}
    hosts: [mtls.example.com]
    tls: {{mode: MUTUAL, credentialName: bookinfo-credential}}"""
        if mutual_port
        else ""
    )
    return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  servers:
  - port: {{number: {http_port}, name: http, protocol: HTTP}}
    hosts: [bookinfo.example.com]{redirect_tls}
  - port: {{number: {https_port}, name: https-bookinfo, protocol: HTTPS}}
    hosts: [bookinfo.example.com]
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential}}
  - port: {{number: {https_port}, name: https-httpbin, protocol: HTTPS}}
    hosts: [httpbin.example.com]
    tls: {{mode: SIMPLE, credentialName: httpbin-credential}}{mutual}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo}}
spec:
  hosts: [bookinfo.example.com, mtls.example.com]
  gateways: [gw]
  http:
  - directResponse: {{status: 200, body: {{string: bookinfo}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: httpbin}}
spec:
  hosts: [httpbin.example.com]
  gateways: [gw]
  http:
  - directResponse: {{status: 200, body: {{string: httpbin}}}}
"""
