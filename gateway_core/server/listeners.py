"""Control path: ``ListenerSet`` opens, updates and closes the data-path listeners.

Listeners are keyed by (bind address, port, protocol), mitmproxy-style: an unchanged key keeps
its socket (a reload never drops or re-binds a port) and only swaps the server list and TLS
contexts; removed listeners stop accepting before new ones bind, so ports are free.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway_core.server.tls import ServerTlsStore
from gateway_core.snapshot import ListenerProtocol, ListenerSpec

if TYPE_CHECKING:
    from gateway_core.proxy.context import GatewayContext

_log = logging.getLogger("gateway.listeners")

ListenerKey = tuple[str, int, ListenerProtocol]


class ListenerRuntime:
    """What a downstream connection needs to know about the listener it arrived on."""

    __slots__ = ("default_authority", "default_route_table", "port", "server", "spec", "tls")

    def __init__(self, spec: ListenerSpec) -> None:
        self.spec = spec
        self.port = spec.port
        self.server: asyncio.Server | None = None
        self.tls: ServerTlsStore | None = (
            ServerTlsStore(spec.servers) if spec.protocol is ListenerProtocol.HTTPS else None
        )
        self.default_route_table = spec.servers[0].route_table
        self.default_authority = b""

    def update(self, spec: ListenerSpec) -> None:
        if self.tls is not None:
            self.tls.update(spec.servers)
        self.spec = spec
        self.default_route_table = spec.servers[0].route_table


class ListenerSet:
    def __init__(self, runtime: GatewayContext, *, shared: bool = False, reserve: bool = False):
        """``shared``: listen with ``SO_REUSEPORT`` (a worker process: the kernel spreads
        connections over the workers' sockets). ``reserve``: the supervisor's set -- it binds
        each port with ``SO_REUSEPORT`` but never listens, so a port that cannot be bound
        rejects the configuration before any worker sees it, and the port stays held while
        workers restart; TLS contexts are still built, so bad certificates are rejected too."""
        self._runtime = runtime
        self._shared = shared or reserve
        self._reserve = reserve
        self._reserved: dict[int, socket.socket] = {}
        self.listeners: dict[ListenerKey, ListenerRuntime] = {}
        self.accepting = True

    async def reconcile(self, specs: Sequence[ListenerSpec]) -> None:
        """Open new listeners, update kept ones, close removed ones. Raises OSError (with the
        address in the message) when a port cannot be bound; then nothing changes."""
        wanted = {(s.bind, s.port, s.protocol): s for s in specs}
        removed = [k for k in self.listeners if k not in wanted]
        for key in removed:
            await self._close(self.listeners.pop(key))
        opened: list[ListenerKey] = []
        try:
            for key, spec in wanted.items():
                current = self.listeners.get(key)
                if current is not None:
                    current.update(spec)
                    continue
                listener = ListenerRuntime(spec)
                await self._open(listener)
                self.listeners[key] = listener
                opened.append(key)
        except OSError:
            for key in opened:
                await self._close(self.listeners.pop(key))
            raise

    async def _open(self, listener: ListenerRuntime) -> None:
        spec = listener.spec
        loop = asyncio.get_running_loop()
        runtime = self._runtime
        from gateway_core.proxy.downstream import DownstreamProtocol

        ssl_ctx = listener.tls.listener_context() if listener.tls is not None else None
        if self._reserve:
            self._reserved[id(listener)] = _reserve(spec.bind, spec.port)
            listener.port = self._reserved[id(listener)].getsockname()[1]
            return
        try:
            listener.server = await loop.create_server(
                lambda: DownstreamProtocol(runtime, listener),
                host=spec.bind,
                port=spec.port,
                ssl=ssl_ctx,
                reuse_address=True,
                reuse_port=self._shared or None,
                backlog=1024,
                ssl_handshake_timeout=10.0 if ssl_ctx is not None else None,
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot listen on {spec.bind}:{spec.port}: {exc.strerror}"
            ) from exc
        sock = listener.server.sockets[0]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        listener.port = sock.getsockname()[1]
        listener.default_authority = f"{spec.bind}:{listener.port}".encode()
        _log.info("listening on %s:%d (%s)", spec.bind, listener.port, spec.protocol.value)

    async def _close(self, listener: ListenerRuntime) -> None:
        reserved = self._reserved.pop(id(listener), None)
        if reserved is not None:
            reserved.close()
        if listener.server is not None:
            listener.server.close()
            _log.info("stopped listening on %s:%d", listener.spec.bind, listener.port)

    def stop_accepting(self) -> None:
        """Drain step: close listening sockets; open connections continue."""
        self.accepting = False
        for listener in self.listeners.values():
            if listener.server is not None:
                listener.server.close()

    def close_reservations(self) -> None:
        for sock in self._reserved.values():
            sock.close()
        self._reserved.clear()

    def reload_certificates(self) -> tuple[int, list[str]]:
        """Re-read changed certificate files; returns (server contexts rebuilt, errors)."""
        errors: list[str] = []
        reloaded = 0
        for listener in self.listeners.values():
            if listener.tls is not None:
                result = listener.tls.reload_if_changed()
                reloaded += len(result.reloaded)
                errors.extend(result.errors)
        return reloaded, errors

    def certificate_expiry(self) -> list[tuple[str, str, str, float]]:
        """(listener, server, certificate file, notAfter as a Unix time) of every served
        certificate, as loaded by the TLS stores (no file is read here)."""
        return [
            (listener.spec.name, server, cert.cert_file, cert.not_after.timestamp())
            for listener in self.listeners.values()
            if listener.tls is not None
            for server, cert in sorted(listener.tls.certificate_expiry().items())
        ]


def _reserve(bind: str, port: int) -> socket.socket:
    """A bound, never listening ``SO_REUSEPORT`` socket: holds the port for the workers."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bind, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {bind}:{port}: {exc.strerror}") from exc
    return sock
