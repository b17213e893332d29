"""Test kit for the TLS tests: a trustme PKI, loop runners (asyncio and uvloop), a TLS echo
server built on a ``ServerTlsStore``, and small client helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trustme
import uvloop
from cryptography import x509

from gateway_core.server.tls import ServerTlsStore
from gateway_core.snapshot import ServerSpec, ServerTlsMode, TlsServerSpec

T = TypeVar("T")
SIMPLE, MUTUAL, OPTIONAL = ServerTlsMode.SIMPLE, ServerTlsMode.MUTUAL, ServerTlsMode.OPTIONAL_MUTUAL
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


def _replace_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Pki:
    root: Path
    ca: trustme.CA
    other_ca: trustme.CA

    def ca_file(self, ca: trustme.CA | None = None) -> str:
        path = self.root / f"ca-{id(ca or self.ca)}.crt"
        (ca or self.ca).cert_pem.write_to_path(str(path))
        return str(path)

    def issue(self, name: str, *hosts: str, ca: trustme.CA | None = None) -> tuple[Path, Path]:
        """Write ``name.crt``/``name.key`` (key first, as a rotation would) and return them."""
        leaf = (ca or self.ca).issue_cert(*(hosts or (name,)))
        crt, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        _replace_file(key, leaf.private_key_pem.bytes())
        _replace_file(crt, leaf.cert_chain_pems[0].bytes())
        return crt, key

    def server(
        self, name: str, *hosts: str, mode: ServerTlsMode = SIMPLE, **tls: Any
    ) -> ServerSpec:
        names = [h.rsplit("/", 1)[-1] for h in hosts if h != "*"]
        crt, key = self.issue(name, *names)
        ca = (
            self.ca_file()
            if mode is not SIMPLE and "ca_file" not in tls
            else tls.pop("ca_file", None)
        )
        spec = TlsServerSpec(mode, str(crt), str(key), ca_file=ca, **tls)
        return ServerSpec(name, hosts or (name,), f"rt-{name}", spec)

    def client_ctx(self, cert_of: trustme.CA | None = None, cn: str = "client") -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        self.ca.configure_trust(ctx)
        if cert_of is not None:
            cert_of.issue_cert(cn).configure_cert(ctx)
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, trustme.CA(), trustme.CA())


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, T]], T]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)

    return runner


async def _handle(store: ServerTlsStore, reader: asyncio.StreamReader, writer: Any) -> None:
    """Reply ``server|admit verdict|peer verified``; as HTTP for curl, else line by line."""
    conn = writer.get_extra_info("ssl_object")
    verdict = store.admit(conn) or "ok"
    reply = f"{store.server_of(conn).name}|{verdict}|{int(store.peer_verified(conn))}"
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        line = await reader.readline()
        if line.startswith(b"GET "):
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(reply)}\r\nConnection: close\r\n\r\n"
            writer.write((head + reply).encode())
        else:
            writer.write(reply.encode() + b"\n")
            while verdict == "ok" and (line := await reader.readline()):
                writer.write(b"echo " + line)
        await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def serving(store: ServerTlsStore) -> AsyncIterator[int]:
    writers: list[Any] = []

    async def handle(reader: asyncio.StreamReader, writer: Any) -> None:
        writers.append(writer)
        await _handle(store, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=store.listener_context())
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for w in writers:
            w.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)


@dataclass
class Reply:
    text: str
    cert: x509.Certificate
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def talk(port: int, sni: str | None, ctx: ssl.SSLContext) -> Reply:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.write(b"hello\n")
    text = (await reader.readline()).decode().strip()
    return Reply(text, x509.load_der_x509_certificate(der), reader, writer)


async def ask(port: int, sni: str | None, ctx: ssl.SSLContext) -> str:
    """The server's reply, or ``refused`` when the handshake (or the TLS 1.3 client-certificate
    check that follows it) fails."""
    try:
        reply = await talk(port, sni, ctx)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    await reply.close()
    return reply.text or "refused"


def _serial(crt: Path) -> int:
    return x509.load_pem_x509_certificate(crt.read_bytes()).serial_number
