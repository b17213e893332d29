"""Data path: what a matched route does (forward, redirect, direct response) and its decorations.

All of these are built by the compiler and never change afterwards.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from gateway_core.config.regex import RegexRewrite

HeaderList = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class HeaderOps:
    """Istio ``HeaderOperations``: ``set`` overwrites, ``add`` appends, ``remove`` deletes."""

    set: tuple[tuple[bytes, bytes], ...] = ()
    add: tuple[tuple[bytes, bytes], ...] = ()
    remove: frozenset[bytes] = frozenset()

    def apply(self, headers: HeaderList) -> HeaderList:
        drop = self.remove | {name for name, _ in self.set}
        out = [(n, v) for n, v in headers if n not in drop] if drop else headers
        out.extend(self.set)
        out.extend(self.add)
        return out

    def __bool__(self) -> bool:
        return bool(self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class WeightedCluster:
    cluster: str
    weight: int
    host: str
    subset: str | None = None
    port: int = 0
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None


@dataclass(frozen=True, slots=True)
class RouteAction:
    """Forward to one of ``clusters``; a destination gets ``weight / sum(weights)`` of requests."""

    clusters: tuple[WeightedCluster, ...]
    cumulative: tuple[int, ...] = field(default=())

    @classmethod
    def build(cls, clusters: tuple[WeightedCluster, ...]) -> RouteAction:
        running = 0
        cumulative = []
        for c in clusters:
            running += c.weight
            cumulative.append(running)
        return cls(clusters, tuple(cumulative))

    @property
    def total_weight(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    def pick(self, draw: int) -> WeightedCluster:
        """``draw`` is uniform in ``[0, total_weight)``; one destination only: always it."""
        if len(self.clusters) == 1:
            return self.clusters[0]
        return self.clusters[bisect_right(self.cumulative, draw)]


@dataclass(frozen=True, slots=True)
class RedirectAction:
    code: int = 301
    scheme: bytes | None = None
    authority: bytes | None = None
    port: int | None = None
    derive_port: str | None = None
    path: bytes | None = None
    prefix_rewrite: bytes | None = None
    https_redirect: bool = False
    """A server's ``tls.httpsRedirect``: scheme https, the HTTPS server's port (``https_port``)."""
    https_port: int = 443


@dataclass(frozen=True, slots=True)
class DirectResponseAction:
    status: int
    body: bytes = b""


Action = RouteAction | RedirectAction | DirectResponseAction


@dataclass(frozen=True, slots=True)
class RewriteSpec:
    """``rewrite``: prefix (or whole path) replacement, regex rewrite, authority."""

    uri: bytes | None = None
    regex: RegexRewrite | None = None
    authority: bytes | None = None


# Envoy's ``x-envoy-retry-grpc-on`` conditions: the ``grpc-status`` each one retries.
GRPC_RETRY_ON = {
    "cancelled": 1,
    "deadline-exceeded": 4,
    "resource-exhausted": 8,
    "internal": 13,
    "unavailable": 14,
}


@dataclass(frozen=True, slots=True)
class RetrySpec:
    """Envoy's route retry policy as Istio (1.24 and later) translates ``HTTPRetry``. The
    defaults are Istio's policy for a route without ``retries``: 2 retries on connect failures,
    refused streams and gRPC ``unavailable``/``cancelled``, no status code (503 is not retried
    since Istio 1.24), no per-try timeout, 25 ms back-off, avoiding hosts already tried."""

    attempts: int = 2
    per_try_timeout: float | None = None
    retry_on: frozenset[str] = frozenset(
        {"connect-failure", "refused-stream", "unavailable", "cancelled", "retriable-status-codes"}
    )
    retriable_status_codes: frozenset[int] = frozenset()
    backoff: float = 0.025
    previous_hosts: bool = True
    """Envoy's ``previous_hosts`` retry predicate: a retry avoids the hosts already tried."""
    grpc_statuses: frozenset[int] = field(init=False)
    """The ``grpc-status`` values ``retry_on`` retries (derived)."""

    def __post_init__(self) -> None:
        statuses = frozenset(GRPC_RETRY_ON[c] for c in self.retry_on if c in GRPC_RETRY_ON)
        object.__setattr__(self, "grpc_statuses", statuses)


DEFAULT_RETRY = RetrySpec()


@dataclass(frozen=True, slots=True)
class FaultSpec:
    delay: float | None = None
    delay_percent: float = 0.0
    abort_status: int | None = None
    abort_grpc_status: int | None = None
    """``abort.grpcStatus`` as its code: Envoy answers HTTP 200 carrying that grpc-status."""
    abort_percent: float = 0.0


@dataclass(frozen=True, slots=True)
class MirrorSpec:
    cluster: str
    percent: float = 100.0


@dataclass(frozen=True, slots=True)
class CorsSpec:
    allow_origins: tuple[object, ...] = ()
    allow_methods: bytes = b""
    allow_headers: bytes = b""
    expose_headers: bytes = b""
    max_age: bytes = b""
    allow_credentials: bool = False
