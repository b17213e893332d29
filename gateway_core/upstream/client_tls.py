"""Control path: TLS contexts for upstream origination (DestinationRule ``trafficPolicy.tls``).

Tier-1 speaks TLS to Tier-2 with these: SIMPLE verifies the server against ``caCertificates``
(system CAs when absent), MUTUAL also presents a client certificate. ``ClientContextStore`` builds
one context per ``UpstreamTls`` when a cluster that uses it is built (reload) and rebuilds it when
its files change (the certificate watcher calls ``refresh``). It *publishes* the context in a
``ClientTlsSlot`` that clusters share; a new upstream connection only reads ``slot.context``, so
the request path never stats a file or builds a context, and rotated client certificates are
used by the connections opened after the watcher noticed them.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable

from gateway_core.snapshot import UpstreamTls, UpstreamTlsMode
from gateway_core.tls.common import (
    FileSignature,
    SslConn,
    TlsConfigError,
    file_signature,
    san_matches,
)
from gateway_core.tls.groups import restrict_groups

_log = logging.getLogger("gateway.tls.upstream")

UPSTREAM_ALPN = ("http/1.1",)
H2_ALPN = ("h2",)
"""Offered to HTTP/2 clusters' hosts: HTTP/2 only (Envoy's upstream ALPN for HTTP/2)."""
"""ALPN offered to upstreams (the upstream codec is HTTP/1.1)."""


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


def build_client_context(tls: UpstreamTls, alpn: tuple[str, ...] = UPSTREAM_ALPN) -> ssl.SSLContext:
    """Origination context. Without ``subject_alt_names`` the server is checked against the
    ``server_hostname``; with them, hostname checking is off and ``check_upstream_peer`` must be
    called once the handshake is done."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(list(alpn))
    restrict_groups(ctx)  # X25519, P-256, P-384, as downstream
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


class ClientTlsSlot:
    """The published context of one ``UpstreamTls``. The control path replaces ``context``;
    the data path reads it once per new connection. ``context`` is None only while the
    material has never loaded, and ``error`` then says why (connections fail with it)."""

    __slots__ = ("_failed", "_signature", "alpn", "context", "error", "spec")

    def __init__(self, spec: UpstreamTls, alpn: tuple[str, ...] = UPSTREAM_ALPN) -> None:
        self.spec = spec
        self.alpn = alpn
        self.context: ssl.SSLContext | None = None
        self.error = ""
        self._signature: FileSignature | None = None
        self._failed: FileSignature | None = None

    @property
    def files(self) -> tuple[str, ...]:
        spec = self.spec
        return tuple(f for f in (spec.ca_file, spec.cert_file, spec.key_file) if f)

    def load(self) -> str | None:
        """(Re)build the context if its files changed since the last attempt; an error message
        when that failed (the previous context, if any, stays published)."""
        signature = file_signature(self.files)
        if signature in (self._signature, self._failed):
            return None
        try:
            ctx = build_client_context(self.spec, self.alpn)
        except TlsConfigError as exc:
            self._failed = signature
            if self.context is None:
                self.error = str(exc)
                return str(exc)
            return f"keeping the previous upstream TLS context: {exc}"
        self.context, self.error = ctx, ""
        self._signature, self._failed = signature, None
        return None


class ClientContextStore:
    """One ``ClientTlsSlot`` per ``UpstreamTls``, shared by the clusters that use it. Only the
    control path calls it: ``slot`` while building clusters, ``refresh`` from the certificate
    watcher, ``retain`` after a reload."""

    def __init__(self) -> None:
        self._slots: dict[tuple[UpstreamTls, tuple[str, ...]], ClientTlsSlot] = {}
        self.generation = 0
        """Bumped by ``refresh`` whenever a context was rebuilt."""

    def slot(self, tls: UpstreamTls, alpn: tuple[str, ...] = UPSTREAM_ALPN) -> ClientTlsSlot:
        """The slot for ``tls`` offering ``alpn`` (HTTP/2 clusters offer ``h2``), its context
        built now when it is new."""
        slot = self._slots.get((tls, alpn))
        if slot is None:
            slot = self._slots[(tls, alpn)] = ClientTlsSlot(tls, alpn)
            error = slot.load()
            if error is not None:
                _log.error("%s", error)
        return slot

    def refresh(self) -> list[str]:
        """Rebuild the contexts whose files changed; one message per failed rebuild (each bad
        version of the files is reported once)."""
        errors: list[str] = []
        for slot in self._slots.values():
            was = slot.context
            error = slot.load()
            if error is not None:
                errors.append(error)
            elif slot.context is not was:
                self.generation += 1
                _log.info("upstream TLS material reloaded: %s", ", ".join(slot.files))
        return errors

    def retain(self, specs: Iterable[UpstreamTls]) -> None:
        """Stop watching contexts no longer configured (clusters still holding a slot keep
        using its last context until they retire)."""
        keep = set(specs)
        for key in [k for k in self._slots if k[0] not in keep]:
            del self._slots[key]
