"""Control path: what one active health-check probe reports, and the prober interface.

``HealthChecker`` (``upstream/health_check.py``) owns the rounds, the counters and the
thresholds; a prober only answers "did this host pass, and why not". There are two: an HTTP GET
(``HttpProber``, aiohttp) and a ``grpc.health.v1`` call (``GrpcProber``, grpc.aio).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import Protocol

from gateway_core.upstream.host import Host, HostKey


@dataclass(frozen=True, slots=True)
class ProbeResult:
    passed: bool
    status: int | str | None = None
    """The HTTP status, or the ``grpc.health.v1`` serving status name (``SERVING`` ...);
    None when no answer came (timeout, refused connection, TLS or RPC error)."""
    error: str | None = None
    """Why the probe failed (None when it passed)."""


class Prober(Protocol):
    def open(self) -> None:
        """Prepare the client (idempotent; called at ``start`` and before every round)."""

    async def begin_round(self, live: Set[HostKey]) -> None:
        """A round over ``live`` starts: forget what is kept for hosts that left."""

    async def probe(self, host: Host) -> ProbeResult:
        """Probe ``host`` once, within the policy's timeout."""

    async def close(self) -> None:
        """Close every connection (``HealthChecker.stop``)."""
