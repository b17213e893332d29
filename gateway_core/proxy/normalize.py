"""Data path: request-target checks and path normalisation before routing.

The router and the upstream see the same normalised path (Envoy ``normalize_path`` plus
``merge_slashes``): percent-encoded unreserved characters are decoded (``%2e`` → ``.``), dot
segments removed (RFC 3986 §5.2.4) and repeated slashes merged. ``%2F`` and ``%5C`` stay
encoded (Envoy's KEEP_UNCHANGED default). Fragments are dropped (never sent by browsers).
"""

from __future__ import annotations

import re

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")
_INVALID_TARGET = bytes(range(0x21)) + b"\x7f"


class BadTarget(ValueError):
    pass


_PLAIN_TARGET = re.compile(rb"(?:/(?![/.])[^/%?#\x00-\x20\x7f]*)+(?:\?[^#\x00-\x20\x7f]*)?")
"""Origin-form targets that need nothing done: no ``%``, ``/.`` or ``//`` in the path, no
fragment, no invalid character. One match answers for the common case."""


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """``/a/b?x=1#f`` → (normalised path, query). Raises BadTarget for malformed targets."""
    if _PLAIN_TARGET.fullmatch(target) is not None:
        path, _, query = target.partition(b"?")
        return path, query
    if target[:1] != b"/":
        raise BadTarget("request target must be origin-form")
    if len(target.translate(None, _INVALID_TARGET)) != len(target):
        raise BadTarget("invalid character in request target")
    hash_at = target.find(b"#")
    if hash_at >= 0:
        target = target[:hash_at]
    path, _, query = target.partition(b"?")
    return normalize_path(path), query


def normalize_path(path: bytes) -> bytes:
    if b"%" in path:
        path = _PCT.sub(_decode_unreserved, path)
    if b"/." not in path and b"//" not in path:
        return path
    out: list[bytes] = []
    segments = path.split(b"/")
    for seg in segments[1:]:
        if seg == b"..":
            if out:
                out.pop()
        elif seg not in (b".", b""):
            out.append(seg)
    trailing = segments[-1] in (b"", b".", b"..") and len(segments) > 1 and bool(out)
    result = b"/" + b"/".join(out)
    if trailing:
        result += b"/"
    return result


def _decode_unreserved(match: re.Match[bytes]) -> bytes:
    value = int(match.group(1), 16)
    if value in _UNRESERVED:
        return bytes((value,))
    return b"%" + match.group(1).upper()
