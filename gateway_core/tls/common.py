"""Control path: TLS pieces shared by termination (server/tls.py) and origination
(upstream/client_tls.py): the configuration error, file signatures for rotation, and SAN
matching. Nothing here imports a layer above it."""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

SslConn = ssl.SSLObject | ssl.SSLSocket
FileSignature = tuple[tuple[str, int, int, int] | tuple[str, None, None, None], ...]


class TlsConfigError(Exception):
    """TLS material or settings that cannot be turned into a context."""


def file_signature(paths: Iterable[str]) -> FileSignature:
    """(path, mtime_ns, size, inode) per file; a missing file has ``None`` fields."""
    sig: list[tuple[str, int, int, int] | tuple[str, None, None, None]] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            sig.append((path, None, None, None))
        else:
            sig.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(sig)


def _dns_match(pattern: str, name: str) -> bool:
    """RFC 6125 matching of a certificate DNS SAN: a wildcard covers exactly one left label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def san_matches(peer_cert: dict[str, Any], names: Sequence[str]) -> bool:
    """Whether any SAN of a ``getpeercert()`` dict equals one of ``names`` (DNS wildcards in the
    certificate honoured, IP addresses compared as addresses, URIs exactly)."""
    for kind, value in peer_cert.get("subjectAltName", ()):
        for want in names:
            if kind == "DNS" and _dns_match(value, want):
                return True
            if kind == "URI" and value == want:
                return True
            if kind == "IP Address" and _same_ip(value, want):
                return True
    return False


def _same_ip(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a.strip()) == ipaddress.ip_address(b.strip("[]"))
    except ValueError:
        return False
