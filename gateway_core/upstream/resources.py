"""Data path: ``ResourceManager``, the circuit breakers of one cluster (Envoy
``Upstream::ResourceManager``, ``include/envoy/upstream/resource_manager.h``).

It is the only owner of the breaker counters: the pools count connections and pending requests
on it, the router counts requests and retries on it, and the metrics read it. Each ``Resource``
has Envoy's interface (``can_create``, ``inc``, ``dec``, ``count``, ``max``) plus the counter of
times it refused (its overflow statistic):

========================  =====================================  ================================
resource                  Istio ``connectionPool`` field          overflow statistic (Envoy name)
========================  =====================================  ================================
``connections``           ``tcp.maxConnections``                  ``upstream_cx_overflow``
``pending_requests``      ``http.http1MaxPendingRequests``        ``upstream_rq_pending_overflow``
``requests``              ``http.http2MaxRequests``               requests refused at the router
``retries``               ``http.maxRetries``                     ``upstream_rq_retry_overflow``
========================  =====================================  ================================

Envoy keeps one manager per priority (DEFAULT and HIGH), but Istio only ever configures
DEFAULT and no route here selects HIGH, so there is one manager per cluster, the DEFAULT one.
Everything runs on one event loop: no atomics, and ``count`` never goes above ``max`` except
where a caller deliberately creates anyway (a host with no connection may always open one).
"""

from __future__ import annotations

from typing import Any

from gateway_core.snapshot import PoolLimits


class Resource:
    """One counted resource with a maximum (Envoy ``ResourceLimit``)."""

    __slots__ = ("count", "max", "overflow")

    def __init__(self, maximum: int) -> None:
        self.count = 0
        self.max = maximum
        self.overflow = 0
        """Times this breaker refused (or, for connections, was exceeded on purpose)."""

    def can_create(self) -> bool:
        return self.count < self.max

    def inc(self) -> None:
        self.count += 1

    def dec(self) -> None:
        assert self.count > 0, "resource released more often than taken"
        self.count -= 1

    def dec_by(self, amount: int) -> None:
        assert amount <= self.count, "resource released more often than taken"
        self.count -= amount

    def try_inc(self) -> bool:
        """``inc`` when ``can_create``; otherwise count the overflow and return False."""
        if self.count < self.max:
            self.count += 1
            return True
        self.overflow += 1
        return False

    @property
    def remaining(self) -> int:
        return max(self.max - self.count, 0)

    def dump(self) -> dict[str, int]:
        return {"count": self.count, "max": self.max, "overflow": self.overflow}


class ResourceManager:
    """The DEFAULT-priority breakers of one cluster, built from its compiled ``PoolLimits``."""

    __slots__ = ("connections", "pending_requests", "requests", "retries")

    def __init__(self, limits: PoolLimits) -> None:
        self.connections = Resource(limits.max_connections)
        self.pending_requests = Resource(limits.max_pending_requests)
        self.requests = Resource(limits.max_requests)
        self.retries = Resource(limits.max_retries)

    @property
    def refused_requests(self) -> int:
        """Requests answered 503 ``UO`` by a breaker: pending-request plus request overflow
        (the ``gateway_upstream_rq_pending_overflow`` metric, as Envoy counts both there)."""
        return self.pending_requests.overflow + self.requests.overflow

    def dump(self) -> dict[str, Any]:
        """The admin ``/clusters`` view (Envoy's ``circuit_breakers`` and overflow stats)."""
        return {
            "priority": "DEFAULT",
            "connections": self.connections.dump(),
            "pending_requests": self.pending_requests.dump(),
            "requests": self.requests.dump(),
            "retries": self.retries.dump(),
        }
