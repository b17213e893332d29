"""Control path: TLS contexts for downstream termination (SNI, mTLS, rotation) and upstream TLS.

How OpenSSL 3 behaves when ``sni_callback`` swaps ``ssl_object.context`` (SSL_set_SSL_CTX)
decides the design; each point is exercised in ``tests/gateway_core/server/test_tls.py``:

* Taken from the *selected* context: certificate + key, the CA store that verifies client
  certificates, the TLS 1.2 cipher list, ALPN. CPython's ``getpeercert()`` also decodes the peer
  certificate only when the selected context has a verify mode, so contexts with CAs set one.
* Fixed by the *listener* context when the connection was created: verify mode (whether a client
  certificate is requested or required), protocol versions, curves, options and session
  tickets. The listener gets the union of its servers' versions, and ``admit`` checks the
  negotiated version and the client certificate against the selected server afterwards.
* A TLS 1.3 session resumed under another SNI name keeps the peer certificate it was issued
  with, so tickets are disabled unless every server on the listener trusts client certificates
  the same way. TLS 1.2 resumption reports the original session's SNI, so it stays on the server
  that verified it.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway_core.snapshot import ServerSpec, ServerTlsMode
from gateway_core.tls.common import (
    FileSignature,
    SslConn,
    TlsConfigError,
    file_signature,
    san_matches,
)
from gateway_core.tls.groups import restrict_groups

_log = logging.getLogger("gateway.tls")

# fmt: off
MOZILLA_INTERMEDIATE_CIPHERS: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
)
ISTIO_CIPHER_SUITES: frozenset[str] = frozenset((
    *MOZILLA_INTERMEDIATE_CIPHERS[:6],
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA", "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA",
    "DES-CBC3-SHA",
))
# fmt: on
ALPN_PROTOCOLS = ("h2", "http/1.1")
"""Offered to clients, preferred first (RFC 7301): HTTP/2, then HTTP/1.1."""
_OPTIONS = ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
_V = ssl.TLSVersion
# Python deprecates TLS 1.0/1.1 and OpenSSL 3 refuses them at its default security level, so a
# configured minimum below TLS 1.2 is raised to TLS 1.2 (see docs/tls.md).
_MIN_VERSIONS = {"TLS_AUTO": _V.TLSv1_2, "TLSV1_0": _V.TLSv1_2, "TLSV1_1": _V.TLSv1_2}
_MIN_VERSIONS |= {"TLSV1_2": _V.TLSv1_2, "TLSV1_3": _V.TLSv1_3}
_MAX_VERSIONS = _MIN_VERSIONS | {"TLS_AUTO": _V.TLSv1_3, "TLSV1_0": _V.TLSv1, "TLSV1_1": _V.TLSv1_1}
_NEGOTIATED = {"TLSv1.2": _V.TLSv1_2, "TLSv1.3": _V.TLSv1_3}


def cipher_list(suites: Sequence[str]) -> tuple[str, ...]:
    """The TLS 1.2 suites to offer: the Istio names this OpenSSL supports, duplicates and
    unknown names dropped (Istio warns and ignores them); Mozilla intermediate when none remain."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    kept: list[str] = []
    for name in suites:
        if name in ISTIO_CIPHER_SUITES and name not in kept:
            try:
                probe.set_ciphers(name)
            except ssl.SSLError:
                continue
            kept.append(name)
    return tuple(kept) or MOZILLA_INTERMEDIATE_CIPHERS


def version_range(min_version: str, max_version: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    try:
        low, high = _MIN_VERSIONS[min_version], _MAX_VERSIONS[max_version]
    except KeyError as exc:
        raise TlsConfigError(f"unknown TLS protocol version {exc.args[0]!r}") from None
    if high < low:
        raise TlsConfigError(f"max_protocol_version {max_version} is below the minimum {low.name}")
    return low, high


def _harden(ctx: ssl.SSLContext, ciphers: Sequence[str], ecdh_curve: str | None) -> None:
    ctx.options |= _OPTIONS
    ctx.set_ciphers(":".join(ciphers))
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    restrict_groups(ctx)  # X25519, P-256, P-384 (Mozilla intermediate)
    if ecdh_curve:
        ctx.set_ecdh_curve(ecdh_curve)


@dataclass(frozen=True, slots=True)
class ServedCertificate:
    """A server's certificate file and when it expires."""

    cert_file: str
    not_after: dt.datetime


@dataclass(frozen=True, slots=True)
class CertificateReload:
    """One ``reload_if_changed``: the servers rebuilt from changed files, and the errors of
    those whose new files did not load (their previous certificate keeps serving)."""

    reloaded: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Entry:
    """One server's context plus what the listener and ``admit`` need to know about it."""

    spec: ServerSpec
    context: ssl.SSLContext
    extra_cas: tuple[str, ...]
    files: tuple[str, ...]
    signature: FileSignature
    versions: tuple[ssl.TLSVersion, ssl.TLSVersion]
    not_after: dt.datetime

    @property
    def mode(self) -> ServerTlsMode:
        assert self.spec.tls is not None
        return self.spec.tls.mode

    @property
    def cert_file(self) -> str:
        assert self.spec.tls is not None
        return self.spec.tls.cert_file


def _client_auth(spec: ServerSpec) -> tuple[str, str | None, tuple[str, ...]]:
    assert spec.tls is not None
    if spec.tls.mode is ServerTlsMode.SIMPLE:
        return ("none", None, ())
    return ("verify", spec.tls.ca_file, spec.tls.subject_alt_names)


def _build_entry(
    spec: ServerSpec,
    extra_cas: tuple[str, ...],
    ecdh_curve: str | None,
    now: dt.datetime,
) -> _Entry:
    tls = spec.tls
    if tls is None:
        raise TlsConfigError(f"server {spec.name} has no tls settings")
    cas = (tls.ca_file,) if tls.mode is not ServerTlsMode.SIMPLE else extra_cas
    if tls.mode is not ServerTlsMode.SIMPLE and not tls.ca_file:
        raise TlsConfigError(f"server {spec.name}: {tls.mode.value} requires ca_certificates")
    files = tuple(f for f in (tls.cert_file, tls.key_file, *cas) if f)
    signature = file_signature(files)
    versions = version_range(tls.min_version, tls.max_version)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version, ctx.maximum_version = versions
    _harden(ctx, cipher_list(tls.cipher_suites), ecdh_curve)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
        with open(tls.cert_file, "rb") as f:
            from cryptography import x509  # control path; loaded with the first certificate

            leaf = x509.load_pem_x509_certificates(f.read())[0]
        for ca in cas:
            if ca:
                ctx.load_verify_locations(cafile=ca)
    except (OSError, ValueError, ssl.SSLError) as exc:
        raise TlsConfigError(f"server {spec.name}: {exc}") from exc
    if leaf.not_valid_after_utc <= now:
        raise TlsConfigError(f"server {spec.name}: certificate {tls.cert_file} has expired")
    if cas:
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return _Entry(spec, ctx, extra_cas, files, signature, versions, leaf.not_valid_after_utc)


def normalize_host(host: str) -> str:
    """Gateway host (``ns/host`` allowed) or SNI name → lower-case name without trailing dot."""
    return host.rsplit("/", 1)[-1].strip().rstrip(".").lower()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ServerTlsStore:
    """Per-listener TLS: one context per server, picked by SNI on a single listener context.

    Selection order: exact host, longest ``*.suffix`` (any depth, as Envoy's filter-chain
    match), ``*``, then the listener's first server for a missing or unknown SNI name.
    """

    def __init__(
        self,
        servers: Sequence[ServerSpec],
        *,
        ecdh_curve: str | None = None,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self._ecdh_curve = ecdh_curve
        self._now = now
        self._listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._listener.sni_callback = self._on_sni
        self._selected: weakref.WeakKeyDictionary[Any, _Entry] = weakref.WeakKeyDictionary()
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._entries: dict[str, _Entry] = {}
        self._failed: dict[str, FileSignature] = {}
        self._exact: dict[str, _Entry] = {}
        self._wildcard: dict[str, _Entry] = {}
        self._catch_all: _Entry | None = None
        self._default: _Entry
        self.update(servers)

    def listener_context(self) -> ssl.SSLContext:
        """The context to pass to ``create_server(ssl=...)``; stable across ``update``."""
        return self._listener

    def update(self, servers: Sequence[ServerSpec]) -> None:
        """Replace the server set; all or nothing (raises ``TlsConfigError``, keeps the old).
        Servers without terminating TLS settings (e.g. PASSTHROUGH) are skipped with a warning."""
        for skipped in (s for s in servers if s.tls is None):
            _log.warning("server %s: no terminating TLS settings, not served", skipped.name)
        servers = [s for s in servers if s.tls is not None]
        if not servers:
            raise TlsConfigError("a TLS listener needs at least one server with TLS settings")
        extra = self._listener_cas(servers)
        entries: dict[str, _Entry] = {}
        for spec in servers:
            old = self._entries.get(spec.name)
            cas = extra if spec.tls and spec.tls.mode is ServerTlsMode.SIMPLE else ()
            reuse = old and old.spec == spec and old.extra_cas == cas
            if old and reuse and old.signature == file_signature(old.files):
                entries[spec.name] = old
            else:
                entries[spec.name] = _build_entry(spec, cas, self._ecdh_curve, self._now())
        self._configure_listener(list(entries.values()))
        self._install(entries)
        self._failed.clear()

    @staticmethod
    def _listener_cas(servers: Sequence[ServerSpec]) -> tuple[str, ...]:
        """Client CAs of the listener's (optionally) mutual servers. A SIMPLE server on a mixed
        listener is asked for a client certificate too (verify mode is per listener), so it
        verifies a presented one against these rather than failing every client that sends one."""
        mutual = [s.tls for s in servers if s.tls and s.tls.mode is not ServerTlsMode.SIMPLE]
        return tuple(dict.fromkeys(t.ca_file for t in mutual if t.ca_file))

    def _configure_listener(self, entries: list[_Entry]) -> None:
        ctx = self._listener
        modes = {e.mode for e in entries}
        if modes == {ServerTlsMode.MUTUAL}:
            ctx.verify_mode = ssl.CERT_REQUIRED
        elif modes != {ServerTlsMode.SIMPLE}:
            ctx.verify_mode = ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = min(e.versions[0] for e in entries)
        ctx.maximum_version = max(e.versions[1] for e in entries)
        _harden(ctx, MOZILLA_INTERMEDIATE_CIPHERS, self._ecdh_curve)
        same_trust = len({_client_auth(e.spec) for e in entries}) == 1
        ctx.num_tickets = 2 if same_trust else 0

    def _install(self, entries: dict[str, _Entry]) -> None:
        exact: dict[str, _Entry] = {}
        wildcard: dict[str, _Entry] = {}
        catch_all: _Entry | None = None
        for entry in entries.values():
            for host in map(normalize_host, entry.spec.hosts):
                if host == "*":
                    catch_all = catch_all or entry
                elif host.startswith("*."):
                    wildcard.setdefault(host[1:], entry)
                else:
                    exact.setdefault(host, entry)
        self._entries, self._exact, self._wildcard = entries, exact, wildcard
        self._catch_all = catch_all
        self._default = next(iter(entries.values()))

    def _lookup(self, name: str | None) -> _Entry:
        if name:
            name = normalize_host(name)
            found = self._exact.get(name)
            if found:
                return found
            dot = name.find(".", 1)
            while 0 < dot < len(name) - 1:
                found = self._wildcard.get(name[dot:])
                if found:
                    return found
                dot = name.find(".", dot + 1)
        return self._catch_all or self._default

    def _on_sni(self, conn: SslConn, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        entry = self._lookup(server_name)
        conn.context = entry.context
        self._selected[conn] = entry
        if server_name:
            self._names[conn] = server_name

    def server_for_sni(self, name: str | None) -> ServerSpec:
        return self._lookup(name).spec

    def _entry_of(self, conn: SslConn) -> _Entry:
        return self._selected.get(conn) or self._default

    def server_of(self, conn: SslConn) -> ServerSpec:
        """The server (and so the route table) the connection's handshake selected."""
        return self._entry_of(conn).spec

    def server_name(self, conn: SslConn) -> str | None:
        """The SNI name the client sent (authorization's ``connection.sni``), or None."""
        return self._names.get(conn)

    def requires_client_cert(self, conn: SslConn) -> bool:
        return self._entry_of(conn).mode is ServerTlsMode.MUTUAL

    @staticmethod
    def peer_verified(conn: SslConn) -> bool:
        """True when the client presented a certificate (OpenSSL fails the handshake when a
        presented one does not verify, so presence means verified)."""
        return bool(conn.getpeercert())

    def admit(self, conn: SslConn) -> str | None:
        """Check a completed handshake against its server; a reason to close it, or None."""
        entry = self._entry_of(conn)
        name = entry.spec.name
        if entry.mode is ServerTlsMode.MUTUAL and not self.peer_verified(conn):
            return f"server {name} requires a client certificate"
        version = _NEGOTIATED.get(conn.version() or "")
        if version is None or not entry.versions[0] <= version <= entry.versions[1]:
            return f"server {name} does not allow {conn.version()}"
        assert entry.spec.tls is not None
        sans = entry.spec.tls.subject_alt_names
        peer = conn.getpeercert()
        if sans and peer and not san_matches(peer, sans):
            return f"server {name}: client certificate matches none of {list(sans)}"
        return None

    def certificate_expiry(self) -> dict[str, ServedCertificate]:
        """Each server's served certificate file and its ``notAfter``, as read when it was
        loaded (for the expiry metric; nothing is read from disk here)."""
        return {
            name: ServedCertificate(e.cert_file, e.not_after) for name, e in self._entries.items()
        }

    def reload_if_changed(self) -> CertificateReload:
        """Rebuild servers whose files changed; new handshakes use the new context. A file that
        fails to load leaves the old context serving; each bad version is reported once."""
        errors: list[str] = []
        changed: dict[str, _Entry] = {}
        for name, entry in self._entries.items():
            signature = file_signature(entry.files)
            if signature in (entry.signature, self._failed.get(name)):
                continue
            try:
                changed[name] = _build_entry(
                    entry.spec, entry.extra_cas, self._ecdh_curve, self._now()
                )
            except TlsConfigError as exc:
                self._failed[name] = signature
                errors.append(f"keeping the previous certificate: {exc}")
                continue
            self._failed.pop(name, None)
            _log.info("server %s: reloaded TLS material", name)
        if changed:
            self._install({**self._entries, **changed})
        return CertificateReload(tuple(changed), tuple(errors))
