"""Data path runtime: ``Host``, one upstream endpoint with its live state.

A Host is created from an ``EndpointSpec`` (plus a resolved address for DNS discovery) and
survives reloads and DNS refreshes while its key ``(address, port)`` stays in the cluster, so
active-request counts, outlier counters and ejection are kept (Pingora's health map).
The data path only reads the flags and bumps ``active_requests``; the outlier detector and the
health checker own the flags.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway_core.snapshot import EMPTY_LABELS, NO_LOCALITY, Locality

HostKey = tuple[str, int]


class Host:
    __slots__ = (
        "active_requests",
        "address",
        "ejected",
        "hc_failed",
        "hostname",
        "key",
        "labels",
        "locality",
        "locality_weight",
        "monitor",
        "port",
        "priority",
        "total_requests",
        "weight",
    )

    def __init__(
        self,
        address: str,
        port: int,
        *,
        weight: int = 1,
        locality: Locality = NO_LOCALITY,
        labels: Mapping[str, str] = EMPTY_LABELS,
        priority: int = 0,
        locality_weight: int = 0,
        hostname: str | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.key: HostKey = (address, port)
        self.weight = max(1, weight)
        self.locality = locality
        self.labels = labels
        self.priority = priority
        self.locality_weight = locality_weight
        self.hostname = hostname
        """The DNS name this host was resolved from, if any."""
        self.active_requests = 0
        self.total_requests = 0
        self.ejected = False
        """Set by outlier detection."""
        self.hc_failed = False
        """Set by active health checking."""
        self.monitor: object | None = None
        """Outlier-detection counters (``outlier.HostMonitor``), attached by the cluster."""

    @property
    def healthy(self) -> bool:
        return not (self.ejected or self.hc_failed)

    @property
    def label(self) -> str:
        return f"{self.address}:{self.port}"

    def __repr__(self) -> str:
        flags = "".join(f for f, on in (("E", self.ejected), ("H", self.hc_failed)) if on)
        suffix = f" {flags}" if flags else ""
        return f"Host({self.address}:{self.port} w={self.weight} p={self.priority}{suffix})"
