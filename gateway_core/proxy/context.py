"""Data path: what the request path needs from the process, as interfaces defined on its side.

Dependencies run one way, ``server → proxy``: the server's ``GatewayRuntime`` and
``ListenerRuntime`` implement these protocols structurally, and nothing in ``proxy/`` imports
``server/``. Unit tests drive the request path with the smallest objects that fit.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Mapping, MutableSet
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway_core.observability.metrics import GatewayMetrics
    from gateway_core.observability.tracing import Tracer
    from gateway_core.proxy.flags import ResponseFlag
    from gateway_core.proxy.token_bucket import Limiter
    from gateway_core.proxy.trace_context import TraceContext
    from gateway_core.routing.actions import WeightedCluster
    from gateway_core.routing.request import RequestHead
    from gateway_core.routing.route_table import RouteEntry
    from gateway_core.security.authn import KeySource
    from gateway_core.settings import GatewaySettings
    from gateway_core.snapshot import ServerSpec, Snapshot
    from gateway_core.upstream.cluster import Cluster
    from gateway_core.upstream.host import Host


class ExchangeOutcome(Protocol):
    """What the process records about a finished exchange (metrics and the access log)."""

    @property
    def start(self) -> float: ...
    @property
    def status(self) -> int: ...
    @property
    def flags(self) -> tuple[ResponseFlag, ...]: ...
    @property
    def req(self) -> RequestHead: ...
    @property
    def host(self) -> Host | None: ...
    @property
    def target(self) -> WeightedCluster | None: ...
    @property
    def entry(self) -> RouteEntry | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...
    @property
    def bytes_sent(self) -> int: ...
    @property
    def request_id(self) -> bytes: ...
    @property
    def response_at(self) -> float:
        """Loop time of the upstream's response head; 0 when no upstream answered."""

    @property
    def trace_id(self) -> bytes:
        """The request's trace id (hex), b"" when it has none."""

    @property
    def protocol(self) -> str: ...
    @property
    def cluster(self) -> Cluster | None: ...
    @property
    def upgrade(self) -> bool: ...
    @property
    def grpc_status(self) -> bytes | None: ...
    @property
    def trace(self) -> TraceContext | None:
        """The gateway's span of this request; None without a tracer."""


class GatewayContext(Protocol):
    """The process as one client connection and its exchanges see it."""

    @property
    def settings(self) -> GatewaySettings: ...
    @property
    def metrics(self) -> GatewayMetrics: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def sticky_key(self) -> bytes: ...
    @property
    def tracer(self) -> Tracer | None:
        """None when tracing is off: trace fields then pass through untouched."""

    @property
    def health_path(self) -> bytes: ...
    @property
    def ready(self) -> bool: ...
    @property
    def draining(self) -> bool: ...
    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def clusters(self) -> Mapping[str, Cluster]: ...
    @property
    def rate_limits(self) -> Mapping[str, Limiter]:
        """The live rate limiters by ``RateLimitSpec.key``, published with the snapshot."""

    @property
    def jwt_keys(self) -> KeySource:
        """Keys fetched from ``jwksUri``, the wall clock and the JWT counters."""

    @property
    def connections(self) -> MutableSet[Any]:
        """Open client connections (the process drains and closes them)."""

    def observe(self, ex: ExchangeOutcome, now: float) -> None:
        """Per-request bookkeeping once an exchange finished (``now``: loop time)."""


class TlsAdmission(Protocol):
    """A TLS listener's decision about a completed handshake."""

    def admit(self, conn: ssl.SSLObject) -> str | None:
        """A reason to close the connection, or None."""

    def server_of(self, conn: ssl.SSLObject) -> ServerSpec:
        """The server (and so the route table) the handshake selected."""

    def server_name(self, conn: ssl.SSLObject) -> str | None:
        """The SNI name the client sent, or None."""


class ListenerContext(Protocol):
    """The listener a client connection arrived on."""

    @property
    def port(self) -> int: ...
    @property
    def default_route_table(self) -> str: ...
    @property
    def default_authority(self) -> bytes: ...
    @property
    def tls(self) -> TlsAdmission | None: ...
