"""Data path: what the gateway may believe about the client behind trusted proxies.

Shared by the HTTP/1.1 connection and HTTP/2 streams."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway_core.routing.request import RequestHead

if TYPE_CHECKING:
    from gateway_core.proxy.context import TlsAdmission

SPIFFE = "spiffe://"


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """What a TLS handshake told about the client (authorization reads it)."""

    sni: str | None = None
    peer_principal: str | None = None
    """The verified client certificate's SPIFFE URI SAN without ``spiffe://``
    (``td/ns/<ns>/sa/<sa>``, Istio's principal form), else None."""


def tls_facts(tls: TlsAdmission, conn: ssl.SSLObject) -> TlsFacts:
    """Computed once per connection, after ``admit`` accepted it."""
    principal: str | None = None
    sans: Any = (conn.getpeercert() or {}).get("subjectAltName", ())
    for kind, value in sans:
        if kind == "URI" and isinstance(value, str) and value.startswith(SPIFFE):
            principal = value[len(SPIFFE) :]
            break
    return TlsFacts(tls.server_name(conn), principal)


def origin_ip(trusted_hops: int, req: RequestHead, client_ip: str) -> str:
    """The client address for ``useSourceIp`` hashing: behind N trusted proxies, the Nth
    address from the right of X-Forwarded-For (Envoy ``xff_num_trusted_hops``)."""
    xff = req.headers.get(b"x-forwarded-for") if trusted_hops else None
    if xff:
        entries = [e.strip() for e in xff.split(b",") if e.strip()]
        if len(entries) >= trusted_hops:
            return entries[-trusted_hops].decode("latin-1")
    return client_ip


def trusts_https(trust_forwarded: bool, req: RequestHead) -> bool:
    """Behind a trusted TLS-terminating hop (``X-Forwarded-Proto: https``) a server's
    ``httpsRedirect`` would loop (istio/istio#16778), so it is not applied."""
    return trust_forwarded and req.headers.get(b"x-forwarded-proto") == b"https"
