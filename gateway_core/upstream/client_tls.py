"""Control path: TLS contexts for upstream origination (DestinationRule ``trafficPolicy.tls``).

Tier-1 speaks TLS to Tier-2 with these: SIMPLE verifies the server against ``caCertificates``
(system CAs when absent), MUTUAL also presents a client certificate. Contexts are shared per
``UpstreamTls`` and rebuilt when their files change, so rotated client certificates are used for
new connections without a restart.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

from gateway_core.server.tls import (
    FileSignature,
    SslConn,
    TlsConfigError,
    file_signature,
    san_matches,
)
from gateway_core.snapshot import UpstreamTls, UpstreamTlsMode

_log = logging.getLogger("gateway.tls.upstream")


def upstream_server_hostname(tls: UpstreamTls, authority_host: str | None) -> str | None:
    """``server_hostname`` for the upstream connection: the configured SNI, else the request's
    authority host (Istio's default SNI for SIMPLE/MUTUAL). An IP address disables SNI in
    Python's ``ssl`` and is then checked against IP SANs."""
    host = tls.sni or authority_host or ""
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host or None


def build_client_context(tls: UpstreamTls) -> ssl.SSLContext:
    """Origination context. Without ``subject_alt_names`` the server is checked against the
    ``server_hostname``; with them, hostname checking is off and ``check_upstream_peer`` must be
    called once the handshake is done."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])  # upstream connections speak HTTP/1.1
    try:
        if tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            if tls.ca_file:
                ctx.load_verify_locations(cafile=tls.ca_file)
            else:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = not tls.subject_alt_names
        if tls.mode is UpstreamTlsMode.MUTUAL:
            if not tls.cert_file or not tls.key_file:
                raise TlsConfigError("MUTUAL upstream TLS requires client_certificate and key")
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"upstream TLS: {exc}") from exc
    return ctx


def check_upstream_peer(tls: UpstreamTls, conn: SslConn) -> None:
    """Enforce ``subject_alt_names`` after the handshake (no-op without them)."""
    if tls.insecure_skip_verify or not tls.subject_alt_names:
        return
    peer = conn.getpeercert()
    if not peer or not san_matches(peer, tls.subject_alt_names):
        raise ssl.SSLCertVerificationError(
            f"upstream certificate matches none of {list(tls.subject_alt_names)}"
        )


class ClientContextCache:
    """Shares one context per ``UpstreamTls`` across pools; rebuilt when its files change.
    A rebuild that fails keeps serving the previous context (logged once per bad version)."""

    def __init__(self) -> None:
        self._cache: dict[UpstreamTls, tuple[FileSignature, ssl.SSLContext]] = {}
        self._failed: dict[UpstreamTls, FileSignature] = {}

    @staticmethod
    def _files(tls: UpstreamTls) -> tuple[str, ...]:
        return tuple(f for f in (tls.ca_file, tls.cert_file, tls.key_file) if f)

    def get(self, tls: UpstreamTls) -> ssl.SSLContext:
        signature = file_signature(self._files(tls))
        cached = self._cache.get(tls)
        if cached and (cached[0] == signature or self._failed.get(tls) == signature):
            return cached[1]
        try:
            ctx = build_client_context(tls)
        except TlsConfigError as exc:
            if cached is None:
                raise
            self._failed[tls] = signature
            _log.error("keeping the previous upstream TLS context: %s", exc)
            return cached[1]
        self._failed.pop(tls, None)
        self._cache[tls] = (signature, ctx)
        return ctx

    def retain(self, specs: Iterable[UpstreamTls]) -> None:
        """Drop contexts no longer referenced by the configuration."""
        keep = set(specs)
        for tls in [t for t in self._cache if t not in keep]:
            del self._cache[tls]
            self._failed.pop(tls, None)
