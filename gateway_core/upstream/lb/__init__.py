"""Data path: the load-balancer interface and the registry of algorithms.

A load balancer picks one ``Host`` out of a fixed sequence of candidate hosts given to it at
build time (the priority layer above it decides which hosts are candidates: the healthy hosts
of one priority level, or all of them in panic mode). Selection never blocks and never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway_core.upstream.host import Host, HostKey


@dataclass(frozen=True, slots=True)
class LbContext:
    """Per-request input to host selection (kept small on purpose, unlike Envoy's)."""

    hash_key: int | None = None
    """64-bit hash from ``hash_key.py`` for consistent-hash policies; None otherwise."""
    attempt: int = 0
    """Retry attempt: hashing balancers move on deterministically (Envoy ``attempt``)."""
    excluded: frozenset[HostKey] = frozenset()
    """Hosts already tried by this request (Envoy ``previous_hosts`` retry predicate)."""


NO_CONTEXT = LbContext()


class LoadBalancer(Protocol):
    def choose_host(self, ctx: LbContext) -> Host | None:
        """A host, or None when there is no candidate left."""
        ...
