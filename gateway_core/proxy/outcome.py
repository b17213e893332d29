"""Data path: ``ExchangeOutcome``, what is recorded of a finished exchange (metrics, the access
log, the trace span). Its own module, beside ``context.py``, so the recorders in
``observability/`` can name it without depending on the process interfaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gateway_core.proxy.flags import ResponseFlag
    from gateway_core.proxy.trace_context import TraceContext
    from gateway_core.routing.actions import WeightedCluster
    from gateway_core.routing.request import RequestHead
    from gateway_core.routing.route_table import RouteEntry
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
