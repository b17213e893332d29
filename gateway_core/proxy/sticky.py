"""Data path: signed sticky-session cookies that name the chosen destination.

Consistent hashing (Istio ``consistentHash``) loses affinity when the host set changes and can
differ between gateway replicas (istio/istio#27466, #41674). This cookie instead carries the
destination itself — a subset cluster (``SUBSET``) or a host ``address:port`` (``HOST``) — with
an HMAC-SHA256 signature, so any replica sharing the key honours it and a client cannot forge
one. While the named destination is healthy it is used; otherwise the gateway balances as
usual and re-issues the cookie for the new choice.

Value format: ``<base64url(destination)>.<base64url(hmac[:16])>``, e.g.
``b3V0Ym91bmR8ODQ0M3xjbHVzdGVyLTF8dGllcjIubGFi.5cZ0YQ8m0yQk3o5Qd1wY2g``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from gateway_core.snapshot import StickyPolicy
from gateway_core.upstream.lb.hash_key import cookie_value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, destination: str) -> str:
    raw = destination.encode("utf-8")
    mac = hmac.new(key, raw, hashlib.sha256).digest()[:16]
    return f"{_b64(raw)}.{_b64(mac)}"


def verify(key: bytes, value: str) -> str | None:
    """The destination named by a cookie value, or None when it is malformed or forged."""
    encoded, sep, tag = value.partition(".")
    if not sep:
        return None
    try:
        raw = _unb64(encoded)
        mac = _unb64(tag)
    except (binascii.Error, ValueError):
        return None
    expected = hmac.new(key, raw, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def requested(policy: StickyPolicy, key: bytes, headers: dict[bytes, bytes]) -> str | None:
    value = cookie_value(headers, policy.cookie_name)
    return verify(key, value) if value else None


def set_cookie(policy: StickyPolicy, key: bytes, destination: str) -> bytes:
    parts = [f"{policy.cookie_name}={sign(key, destination)}", f"Path={policy.cookie_path}"]
    if policy.cookie_ttl:
        parts.append(f"Max-Age={int(policy.cookie_ttl)}")
    parts += ["HttpOnly", "SameSite=Lax"]
    return "; ".join(parts).encode("latin-1")
