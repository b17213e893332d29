"""Data path: the compiled settings of the loop guard (the ``x-gateway-hops`` header).

Each gateway appends its entry, ``<gateway id>;<tag>``, to ``x-gateway-hops`` on the way
upstream; ``tag`` is the first 16 hex digits of HMAC-SHA256(hop secret, gateway id). A request
that already carries this gateway's entry, or that already passed ``max_hops`` gateways, is
refused with 508 (``proxy/loop_guard.py``). The spec is built once per configuration from the
node, so nothing about it is computed per request.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

HOPS_HEADER = b"x-gateway-hops"
TAG_DIGITS = 16


def hop_tag(secret: bytes, gateway_id: bytes) -> bytes:
    """The tag that proves an entry was written by a gateway holding ``secret``."""
    return hmac.digest(secret, gateway_id, hashlib.sha256).hex()[:TAG_DIGITS].encode()


@dataclass(frozen=True, slots=True)
class LoopGuardSpec:
    gateway_id: bytes
    max_hops: int
    secret: bytes = field(repr=False, default=b"")
    entry: bytes = field(init=False)
    """This gateway's own entry, ``<id>;<tag>``."""

    def __post_init__(self) -> None:
        entry = self.gateway_id + b";" + hop_tag(self.secret, self.gateway_id)
        object.__setattr__(self, "entry", entry)

    def verifies(self, entry: bytes) -> bool:
        """Whether ``entry`` was written by a gateway sharing this one's hop secret."""
        gateway_id, sep, tag = entry.rpartition(b";")
        return bool(sep) and hmac.compare_digest(tag, hop_tag(self.secret, gateway_id))
