"""Data path: the compiled settings of one local rate limit (``LocalRateLimit``).

A ``RateLimitSpec`` sits in a filter chain: the gateway's own (``Snapshot.gateway_filters``)
for a gateway-wide limit, a route's (``RouteEntry.filters``) for a VirtualService or route
limit. It holds no state: the buckets live in the process (``proxy/ratelimit.py``), found by
``key``, which names the limit and every parameter, so a reload that leaves a limit unchanged
keeps its buckets and one that changes it starts full ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class KeySource(StrEnum):
    """What a descriptor bucket is chosen by (``NONE``: one bucket for every request)."""

    NONE = "none"
    REMOTE_ADDRESS = "remote_address"
    HEADER = "request_header"
    CLAIM = "claim"


@dataclass(frozen=True, slots=True)
class RateLimitSpec:
    name: str
    """``<namespace>/<name>`` of the LocalRateLimit (the metric's ``limit`` label)."""
    max_tokens: int
    tokens_per_fill: int
    fill_interval: float
    source: KeySource = KeySource.NONE
    header: bytes = b""
    """The request header (lower case) of ``HEADER``."""
    claim: tuple[str, ...] = ()
    """The claim path of ``CLAIM`` (``a.b`` → ``("a", "b")``)."""
    max_keys: int = 10000
    key: str = field(init=False)
    """Stable id of the limit's runtime state: its name and every parameter."""

    def __post_init__(self) -> None:
        detail = self.header.decode("latin-1") or ".".join(self.claim)
        key = (
            f"{self.name}|{self.max_tokens}/{self.tokens_per_fill}/{self.fill_interval!r}"
            f"|{self.source.value}:{detail}|{self.max_keys}"
        )
        object.__setattr__(self, "key", key)
