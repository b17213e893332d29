"""Data path: the 64-bit request hash for consistent-hash policies (Istio ``consistentHash``).

Envoy hashes with xxHash64, which is not available here; ``hash64`` is BLAKE2b with an 8-byte
digest (stable across processes and Python versions, unlike ``hash()``). Exact hash values
therefore differ from Envoy's, the behaviour does not: the same key always lands on the same host.

Key sources, as Envoy's hash policies:

* ``header``: the value of the named request header (absent header -> no hash);
* ``cookie``: the named cookie's value from the ``cookie`` header (quotes stripped, empty value
  counts as absent). When the cookie is absent and the policy has a ttl, the gateway generates
  one: ``generate_cookie`` returns its value and the ``set-cookie`` header, and the request is
  hashed on the new value so the first response already sticks. Envoy derives the value from the
  downstream connection's remote and local addresses (so it is stable per connection), formats
  it as 16 hex digits and sets ``Max-Age`` from the ttl (truncated to whole seconds; ttl 0 =
  session cookie) plus ``Path`` when configured and ``HttpOnly``, e.g.
  ``cookie="bc0e96c66ff8994b"; Max-Age=900; HttpOnly``;
* ``source_ip``: the downstream address without port;
* ``query_parameter``: the first value of the named query parameter (absent -> no hash).

No hash means the hashing balancer picks at random (Envoy does the same).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gateway_core.snapshot import HashKeyKind, HashKeySpec

HASH_MASK = (1 << 64) - 1


def hash64(data: bytes, seed: int = 0) -> int:
    """Stable 64-bit hash; different seeds give independent hash functions (maglev uses 0 and 1)."""
    digest = hashlib.blake2b(data, digest_size=8, salt=seed.to_bytes(16, "little"))
    return int.from_bytes(digest.digest(), "little")


def compute_hash_key(
    spec: HashKeySpec,
    headers: Mapping[bytes, bytes],
    query_params_getter: Callable[[], Mapping[bytes, bytes]],
    source_ip: str,
) -> int | None:
    """The request's hash, or None when the key is absent from the request.

    ``headers`` has lower-case names; ``query_params_getter`` is only called for query-parameter
    policies so the query string is parsed lazily (pass ``lambda: head.query_params``).
    """
    kind = spec.kind
    if kind is HashKeyKind.HEADER:
        value = headers.get(spec.name.lower().encode("latin-1"))
        return None if value is None else hash64(value)
    if kind is HashKeyKind.COOKIE:
        cookie = cookie_value(headers, spec.name)
        return None if cookie is None else hash64(cookie.encode("latin-1"))
    if kind is HashKeyKind.SOURCE_IP:
        return hash64(source_ip.encode("latin-1")) if source_ip else None
    param = query_params_getter().get(spec.name.encode("latin-1"))
    return None if param is None else hash64(param)


def cookie_value(headers: Mapping[bytes, bytes], name: str) -> str | None:
    """The value of cookie ``name`` (quotes stripped), None when absent or empty.

    Several ``cookie`` headers reach us joined with ``,`` (see ``RequestHead``), so both ``;``
    and ``,`` separate pairs; RFC 6265 cookie values contain neither.
    """
    raw = headers.get(b"cookie")
    if not raw:
        return None
    wanted = name.encode("latin-1")
    for pair in raw.replace(b",", b";").split(b";"):
        key, sep, value = pair.strip().partition(b"=")
        if not sep or key != wanted:
            continue
        if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
            value = value[1:-1]
        return value.decode("latin-1") if value else None
    return None


def should_generate_cookie(spec: HashKeySpec | None, hash_key: int | None) -> bool:
    """True when a cookie policy with a ttl found no cookie on the request."""
    return (
        hash_key is None
        and spec is not None
        and spec.kind is HashKeyKind.COOKIE
        and spec.cookie_ttl is not None
    )


@dataclass(frozen=True, slots=True)
class GeneratedCookie:
    value: str
    """16 lower-case hex digits."""
    hash_key: int
    """Hash of ``value``: what the next request carrying the cookie will hash to."""
    set_cookie: bytes
    """Value for the ``set-cookie`` response header."""


def generate_cookie(
    spec: HashKeySpec, remote: tuple[str, int], local: tuple[str, int]
) -> GeneratedCookie:
    """Mint the sticky cookie for a request that had none (``remote``/``local``: downstream)."""
    seed = (_format_address(*remote) + _format_address(*local)).encode("latin-1")
    value = f"{hash64(seed):016x}"
    parts = [f'{spec.name}="{value}"']
    max_age = int(spec.cookie_ttl or 0)
    if max_age:
        parts.append(f"Max-Age={max_age}")
    if spec.cookie_path:
        parts.append(f"Path={spec.cookie_path}")
    parts.append("HttpOnly")
    return GeneratedCookie(
        value=value,
        hash_key=hash64(value.encode("latin-1")),
        set_cookie="; ".join(parts).encode("latin-1"),
    )


def _format_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
