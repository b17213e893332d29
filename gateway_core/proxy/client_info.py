"""Data path: what the gateway may believe about the client behind trusted proxies.

Shared by the HTTP/1.1 connection and HTTP/2 streams."""

from __future__ import annotations

from gateway_core.routing.request import RequestHead


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
