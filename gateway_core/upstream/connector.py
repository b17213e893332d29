"""Data path: how a pool gets new connections, without knowing what a connection speaks.

The pool (``upstream/pool.py``) manages connections through ``PooledConnection``, and a
connection reports back to its pool through ``ConnectionOwner``. The connection classes
(``proxy/upstream_conn.py`` for HTTP/1.1, ``proxy/h2_upstream.py`` for HTTP/2) live above this
layer and are injected by the server as protocol factories of ``SocketConnector``s, so
``upstream/`` never imports ``proxy/``. Tests inject a fake ``Connector`` and drive the pool
without sockets.

A ``SocketConnector`` opens TCP, and TLS with the context the control path *published* in the
cluster's ``ClientTlsSlot`` (no file is read here), then enforces ``subjectAltNames``. It has no
timeout of its own: the pool arms the connect timeout on its clock and cancels the attempt.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from gateway_core.tls.common import TlsConfigError
from gateway_core.upstream.client_tls import ClientTlsSlot, check_upstream_peer
from gateway_core.upstream.host import Host
from gateway_core.utils.tasks import spawn


class PooledConnection(Protocol):
    """What a pool needs of a connection."""

    closed: bool
    requests: int
    """Requests started on it (for ``maxRequestsPerConnection``)."""
    idle_since: float
    """Loop time when the pool last took it back (for the idle timeout)."""
    transport: asyncio.Transport | None

    def close(self) -> None: ...


C = TypeVar("C", bound=PooledConnection)
C_co = TypeVar("C_co", bound=PooledConnection, covariant=True)
C_contra = TypeVar("C_contra", contravariant=True)


class ConnectionOwner(Protocol[C_contra]):
    """What a connection needs of its pool (``HostPool`` implements it)."""

    def may_reuse(self, conn: C_contra) -> bool: ...
    def release(self, conn: C_contra) -> None: ...
    def on_closed(self, conn: C_contra) -> None: ...
    def on_extra_data(self) -> None:
        """The upstream sent bytes beyond its response (the connection is closing)."""
        ...


class Cancellable(Protocol):
    def cancel(self) -> object: ...


class Connector(Protocol[C_co]):
    """Starts connection attempts for pools. ``done`` is called exactly once unless the attempt
    is cancelled first: with the connection, or with None and why it failed."""

    def connect(
        self,
        owner: ConnectionOwner[C_co],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        done: Callable[[C_co | None, str], None],
    ) -> Cancellable: ...


P = TypeVar("P", bound=asyncio.BaseProtocol)


class SocketConnector(Generic[P]):
    """The production connector: one task per attempt on the running loop (asyncio or uvloop).
    ``protocol`` builds the connection object for its owning pool."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Callable[[ConnectionOwner[P]], P]) -> None:
        self._protocol = protocol

    def connect(
        self,
        owner: ConnectionOwner[P],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        done: Callable[[P | None, str], None],
    ) -> Cancellable:
        attempt = self._open(owner, host, tls, server_hostname, done)
        return spawn(attempt, name=f"connect {host.label}")

    async def _open(
        self,
        owner: ConnectionOwner[P],
        host: Host,
        tls: ClientTlsSlot | None,
        server_hostname: str | None,
        done: Callable[[P | None, str], None],
    ) -> None:
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        try:
            ctx = None
            if tls is not None:
                ctx = tls.context
                if ctx is None:
                    raise TlsConfigError(tls.error or "upstream TLS context not built")
            transport, conn = await loop.create_connection(
                lambda: protocol(owner),
                host.address,
                host.port,
                ssl=ctx,
                server_hostname=server_hostname if ctx is not None else None,
            )
            if tls is not None:
                try:
                    check_upstream_peer(tls.spec, transport.get_extra_info("ssl_object"))
                except ssl.SSLError:
                    transport.abort()
                    raise
        except (OSError, ssl.SSLError, ValueError, TlsConfigError) as exc:
            done(None, describe(exc))
            return
        done(conn, "")


def describe(exc: BaseException) -> str:
    """A short reason for a failed connect (the 503 ``UF`` body says it)."""
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)
