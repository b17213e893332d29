"""Control path: the lab PKI generator (one root CA, server and client leaves, in-place rotation).

Run ``python -m certs.generate --out DIR [--force] [--rotate NAME]``. The layout mirrors an Istio
``credentialName`` resolved to a directory per credential::

    DIR/ca.crt  DIR/ca.key                      the lab root CA
    DIR/<credential>/tls.crt tls.key ca.crt     leaf, its key, and the CA (for MUTUAL)

Generation is idempotent: material that is present, consistent and valid for more than
``RENEW_BEFORE`` is kept. Every file is replaced atomically (temp file, fsync, ``os.replace``) so
a gateway polling the files never reads a half-written PEM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "Gateway Lab Root CA"
ORGANIZATION = "Gateway Lab"
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
# Issue slightly in the past so a peer whose clock lags a little still accepts a fresh cert.
BACKDATE = dt.timedelta(minutes=5)

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"


@dataclass(frozen=True, slots=True)
class Credential:
    """One leaf certificate: its directory name, SANs and whether it is a client certificate."""

    name: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...] = ()
    client: bool = False
    common_name: str = ""

    @property
    def subject_cn(self) -> str:
        return self.common_name or self.dns_names[0]


CREDENTIALS: tuple[Credential, ...] = (
    Credential("bookinfo-credential", ("bookinfo.example.com", "*.bookinfo.example.com")),
    Credential(
        "tier2-credential",
        (
            "bookinfo.example.com",
            "tier2.cluster-1.lab",
            "tier2.cluster-2.lab",
            "tier2.cluster-3.lab",
            "*.lab",
            "localhost",
        ),
        ("127.0.0.1", "127.0.1.1", "127.0.2.1", "127.0.3.1"),
    ),
    Credential("httpbin-credential", ("httpbin.example.com",)),
    Credential("helloworld-credential", ("helloworld.example.com",)),
    Credential("grpc-credential", ("grpc.example.com",)),
    Credential("tier1-client", ("tier1-gateway",), client=True, common_name="tier1-gateway"),
)

Key = ec.EllipticCurvePrivateKey


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue_ca(now: dt.datetime) -> tuple[x509.Certificate, Key]:
    """A self-signed P-256 root valid for ``CA_VALIDITY`` that may sign leaves only."""
    key = _new_key()
    name = _name(CA_COMMON_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _san(cred: Credential) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in cred.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in cred.ip_addresses]
    return x509.SubjectAlternativeName(names)


def issue_leaf(
    cred: Credential, ca_cert: x509.Certificate, ca_key: Key, now: dt.datetime
) -> tuple[x509.Certificate, Key]:
    """A leaf signed by the CA; the SAN is non-critical because the subject is non-empty
    (RFC 5280 §4.2.1.6; strict validators such as sslyze reject a critical one)."""
    key = _new_key()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if cred.client else ExtendedKeyUsageOID.SERVER_AUTH
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cred.subject_cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(_san(cred), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` in one step: readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Key] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_after_utc - now > RENEW_BEFORE and cert.not_valid_before_utc <= now


def _leaf_is_current(
    cred: Credential, out: Path, ca_cert: x509.Certificate, now: dt.datetime
) -> bool:
    folder = out / cred.name
    pair = _load_pair(folder / TLS_CERT, folder / TLS_KEY)
    if pair is None or not _fresh(pair[0], now):
        return False
    cert = pair[0]
    try:
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        bundled_ca = (folder / CA_CERT).read_bytes()
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound, OSError):
        return False
    return san == _san(cred) and bundled_ca == _cert_pem(ca_cert)


def _write_leaf(
    cred: Credential, out: Path, ca_cert: x509.Certificate, ca_key: Key, now: dt.datetime
) -> x509.Certificate:
    cert, key = issue_leaf(cred, ca_cert, ca_key, now)
    folder = out / cred.name
    write_atomic(folder / CA_CERT, _cert_pem(ca_cert), 0o644)
    # Key before certificate: a reader catching the gap sees a mismatched pair, which a loader
    # rejects (and retries later), instead of a new certificate it cannot use.
    write_atomic(folder / TLS_KEY, _key_pem(key), 0o600)
    write_atomic(folder / TLS_CERT, _cert_pem(cert), 0o644)
    return cert


def _ensure_ca(out: Path, now: dt.datetime, force: bool) -> tuple[x509.Certificate, Key, bool]:
    pair = None if force else _load_pair(out / CA_CERT, out / CA_KEY)
    if pair is not None and _fresh(pair[0], now):
        return pair[0], pair[1], False
    cert, key = issue_ca(now)
    write_atomic(out / CA_KEY, _key_pem(key), 0o600)
    write_atomic(out / CA_CERT, _cert_pem(cert), 0o644)
    return cert, key, True


def _find(name: str) -> Credential:
    for cred in CREDENTIALS:
        if cred.name == name:
            return cred
    known = ", ".join(c.name for c in CREDENTIALS)
    raise KeyError(f"unknown credential {name!r} (known: {known})")


def generate_lab_certs(
    out: Path, *, force: bool = False, now: dt.datetime | None = None
) -> dict[str, str]:
    """Create or refresh the CA and every credential; returns ``{name: "issued" | "kept"}``."""
    now = now or _utc_now()
    ca_cert, ca_key, ca_new = _ensure_ca(out, now, force)
    actions = {"ca": "issued" if ca_new else "kept"}
    for cred in CREDENTIALS:
        if not force and _leaf_is_current(cred, out, ca_cert, now):
            actions[cred.name] = "kept"
        else:
            _write_leaf(cred, out, ca_cert, ca_key, now)
            actions[cred.name] = "issued"
    return actions


def rotate_credential(out: Path, name: str, *, now: dt.datetime | None = None) -> x509.Certificate:
    """Re-issue one leaf in place (new key, new serial) under the existing CA."""
    cred = _find(name)
    now = now or _utc_now()
    ca_cert, ca_key, _ = _ensure_ca(out, now, force=False)
    return _write_leaf(cred, out, ca_cert, ca_key, now)


def ensure_lab_certs(out: Path) -> Path:
    """Make sure ``out`` holds a complete, fresh lab PKI and return it."""
    generate_lab_certs(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m certs.generate", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--force", action="store_true", help="re-issue the CA and all leaves")
    parser.add_argument("--rotate", metavar="NAME", help="re-issue one credential in place")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.rotate:
        try:
            cert = rotate_credential(out, args.rotate)
        except KeyError as exc:
            parser.error(str(exc.args[0]))
        print(f"rotated {args.rotate}: serial {cert.serial_number:x}")
        return 0
    for name, action in generate_lab_certs(out, force=args.force).items():
        print(f"{action:6} {name}")
    print(f"certificates in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
