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
    from gateway_core.proxy.outcome import ExchangeOutcome
    from gateway_core.proxy.token_bucket import Limiter
    from gateway_core.security.authn import KeySource
    from gateway_core.settings import GatewaySettings
    from gateway_core.snapshot import ServerSpec, Snapshot
    from gateway_core.upstream.cluster import Cluster


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
