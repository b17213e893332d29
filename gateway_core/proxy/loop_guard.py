"""Data path: the loop guard, the first element of the gateway-wide filter chain.

Which received ``x-gateway-hops`` entries count depends on trust, as for X-Forwarded-For:

* from a trusted proxy (``--xff-trusted-hops`` > 0, a Tier-2 behind its Tier-1) every entry;
* from an untrusted client (an internet-facing Tier-1) only entries whose tag verifies with
  this gateway's hop secret: its own entry, and those of gateways sharing the secret. Anything
  else a client sent is dropped, so a client cannot forge a loop or use up the hop budget.

A request carrying this gateway's own entry came back to it: 508 ``LD``. One that already
passed ``max_hops`` gateways: 508 ``LD`` too. Otherwise the counted entries plus this
gateway's own go upstream (``Exchange.hops``; the header writers add the field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.interfaces import AnsweringExchange
from gateway_core.routing.loop_guard import HOPS_HEADER, LoopGuardSpec

if TYPE_CHECKING:
    pass

LOOP_BODY = b"loop detected: this request already passed through this gateway\n"
HOPS_BODY = b"loop detected: too many gateway hops\n"


class HopTarget(AnsweringExchange, Protocol):
    """What the loop guard uses of an exchange (``Exchange`` implements it)."""

    hops: bytes


def counted_entries(spec: LoopGuardSpec, value: bytes, trusted: bool) -> list[bytes]:
    """The received entries that count. From an untrusted client at most ``2 * max_hops``
    entries are verified (each costs an HMAC), the rest dropped unread."""
    entries = [e.strip() for e in value.split(b",")]
    if trusted:
        return [e for e in entries if e]
    return [e for e in entries[: 2 * spec.max_hops] if e and spec.verifies(e)]


def guard(ex: HopTarget, spec: LoopGuardSpec) -> bool:
    """True when the request looped (answered 508); else ``ex.hops`` is what goes upstream."""
    value = ex.req.headers.get(HOPS_HEADER)
    if value is None:
        ex.hops = spec.entry
        return False
    entries = counted_entries(spec, value, ex.down.trust_forwarded)
    if spec.entry in entries:
        ex.local_reply(508, ResponseFlag.LOOP_DETECTED, LOOP_BODY)
        return True
    if len(entries) >= spec.max_hops:
        ex.local_reply(508, ResponseFlag.LOOP_DETECTED, HOPS_BODY)
        return True
    ex.hops = b", ".join([*entries, spec.entry])
    return False
