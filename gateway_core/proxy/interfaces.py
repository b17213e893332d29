"""Data path: the roles of the request path as interfaces, so its modules import one way.

An exchange and its client side call each other, and the codecs, attempts and helpers read the
exchange; naming the concrete classes for that would make every module import every other.
These protocols name what each side uses instead. ``Downstream`` is the client side of one
exchange: ``DownstreamProtocol`` (an HTTP/1.1 connection) and ``H2Stream`` (an HTTP/2 stream)
implement it. ``ExchangeView`` is what codecs and helpers read of an exchange, ``ClientExchange``
what its client side drives; ``Exchange`` implements both. They are annotations only: nothing
here runs on the request path, and this module imports only ``context`` (and, for
annotations, ``trace_context``) of ``proxy/``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from gateway_core.proxy.outcome import ExchangeOutcome

if TYPE_CHECKING:
    from gateway_core.proxy.client_info import TlsFacts
    from gateway_core.proxy.context import GatewayContext
    from gateway_core.proxy.flags import ResponseFlag
    from gateway_core.proxy.trace_context import TraceContext
    from gateway_core.routing.actions import HeaderList, WeightedCluster
    from gateway_core.routing.matchers import RequestMatch
    from gateway_core.routing.request import RequestHead
    from gateway_core.routing.route_table import RouteEntry
    from gateway_core.upstream.cluster import Cluster


class ClientFacts(Protocol):
    """What a client connection knows of itself: the process, its loop, the route table its
    listener (or TLS server) selects, and the client's addresses."""

    @property
    def runtime(self) -> GatewayContext: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...
    @property
    def route_table(self) -> str: ...
    @property
    def client_ip(self) -> str: ...
    @property
    def client_ip_bytes(self) -> bytes: ...
    @property
    def peer_address(self) -> tuple[str, int]: ...
    @property
    def local_address(self) -> tuple[str, int]: ...
    @property
    def trust_forwarded(self) -> bool: ...
    @property
    def tls_facts(self) -> TlsFacts | None:
        """The TLS handshake's SNI name and client principal (None: plaintext)."""


class Downstream(ClientFacts, Protocol):
    """The client side of one exchange: its connection's facts, flow control, and the response
    events each codec turns into bytes or frames."""

    keep_alive: bool
    """The connection persists after this response (an exchange may turn it off)."""

    @property
    def http2(self) -> bool: ...
    @property
    def write_paused(self) -> bool: ...
    @property
    def tunnel(self) -> object | None: ...

    def trusts_https(self, req: RequestHead) -> bool: ...
    def origin_ip(self, req: RequestHead) -> str: ...
    def pause_reading(self, reason: str) -> None: ...
    def resume_reading(self, reason: str) -> None: ...

    # -- response events ---------------------------------------------------------------------
    def send_local_reply(
        self, ex: ExchangeView, status: int, body: bytes, extra: HeaderList
    ) -> None: ...
    def send_continue(self) -> None: ...
    def send_switching_protocols(self, headers: HeaderList) -> None: ...
    def send_response_head(
        self, ex: ExchangeView, status: int, headers: HeaderList, framing: str, length: bytes | None
    ) -> None: ...
    def send_body(self, data: bytes) -> None: ...
    def end_response(self, trailers: HeaderList | None) -> None: ...
    def flush(self) -> None: ...
    def write(self, data: bytes) -> None:
        """Raw bytes (a WebSocket tunnel)."""

    # -- completion ----------------------------------------------------------------------------
    def exchange_finished(self, ex: ClientExchange, abort: bool) -> None: ...
    def internal_error(self, fault: Exception, where: str) -> None: ...


class ExchangeView(Protocol):
    """What codecs, attempts and helpers read of one exchange."""

    @property
    def down(self) -> Downstream: ...
    @property
    def req(self) -> RequestHead: ...
    @property
    def req_framing(self) -> str:
        """How the client delimits the request body: ``none``, ``length`` or ``chunked``."""

    @property
    def head(self) -> bytes:
        """The HTTP/1.1 upstream request head (empty for an HTTP/2 upstream)."""

    @property
    def upgrade(self) -> bool: ...
    @property
    def request_done(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def authority(self) -> bytes: ...
    @property
    def request_id(self) -> bytes: ...
    @property
    def hops(self) -> bytes:
        """The ``x-gateway-hops`` value sent upstream (the loop guard sets it)."""

    @property
    def entry(self) -> RouteEntry | None: ...
    @property
    def match(self) -> RequestMatch | None: ...
    @property
    def target(self) -> WeightedCluster | None: ...
    @property
    def cluster_map(self) -> Mapping[str, Cluster]: ...
    @property
    def trace(self) -> TraceContext | None: ...


class AttemptFlow(Protocol):
    """The attempt streaming an exchange's response, as the client side's flow control sees
    it."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class ClientExchange(ExchangeView, ExchangeOutcome, Protocol):
    """One exchange as its client side drives it (request events, deadlines, teardown) and
    the process records it once finished."""

    activity: float
    """Loop time of the last activity either way (``stream_idle_timeout``)."""
    req_trailers: HeaderList | None
    bytes_received: int
    """Request body bytes, and a tunnel's bytes from the client."""

    @property
    def client_keep_alive(self) -> bool: ...
    @property
    def upstream(self) -> AttemptFlow | None: ...

    def begin(self) -> None: ...
    def on_request_body(self, data: bytes) -> None: ...
    def on_request_complete(self) -> None: ...
    def reject(self, status: int, message: bytes) -> None: ...
    def stream_idle(self) -> None: ...
    def downstream_lost(self) -> None: ...
    def internal_error(self) -> None: ...


class AnsweringExchange(Protocol):
    """What a gateway-wide filter (loop guard, authorization, rate limit) uses of an exchange:
    its request, its client side, and a way to answer it (``Exchange`` implements it)."""

    @property
    def req(self) -> RequestHead: ...
    @property
    def down(self) -> Downstream: ...
    def local_reply(
        self,
        status: int,
        flag: ResponseFlag | None,
        body: bytes | None = None,
        extra: HeaderList | None = None,
        *,
        grpc_status: int | None = None,
    ) -> None: ...
