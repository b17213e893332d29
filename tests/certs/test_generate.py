"""Tests for certs/generate.py: the lab PKI (contents, layout, idempotency, rotation)."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import generate

ROOT = Path(__file__).resolve().parents[2]

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LEAVES = [c.name for c in generate.CREDENTIALS]


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _leaf(out: Path, name: str) -> x509.Certificate:
    return _cert(out / name / "tls.crt")


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return san.get_values_for_type(x509.DNSName), ips


@pytest.fixture
def out(tmp_path: Path) -> Path:
    target = tmp_path / "lab"
    generate.generate_lab_certs(target, now=NOW)
    return target


def test_ca_is_a_ten_year_p256_root(out: Path) -> None:
    """The CA is self-signed, named 'Gateway Lab Root CA', may sign leaves only, lasts 10 years."""
    ca = _cert(out / "ca.crt")
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Gateway Lab Root CA"
    assert ca.issuer == ca.subject
    ca.verify_directly_issued_by(ca)
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical
    assert bc.value.ca
    assert bc.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == dt.timedelta(days=3650, minutes=5)
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert key.curve.name == "secp256r1"


def test_tier2_server_certificate_sans_issuer_and_usage(out: Path) -> None:
    """tier2-credential carries every lab name and IP, serverAuth only, signed by the CA."""
    leaf = _leaf(out, "tier2-credential")
    dns, ips = _sans(leaf)
    assert dns == [
        "bookinfo.example.com",
        "tier2.cluster-1.lab",
        "tier2.cluster-2.lab",
        "tier2.cluster-3.lab",
        "*.lab",
        "localhost",
    ]
    assert ips == ["127.0.0.1", "127.0.1.1", "127.0.2.1", "127.0.3.1"]
    assert leaf.issuer == _cert(out / "ca.crt").subject
    leaf.verify_directly_issued_by(_cert(out / "ca.crt"))
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical
    assert leaf.not_valid_after_utc == NOW + dt.timedelta(days=365)


def test_public_credentials_cover_their_hosts(out: Path) -> None:
    """bookinfo has its apex and wildcard; httpbin and helloworld their single host."""
    assert _sans(_leaf(out, "bookinfo-credential")) == (
        ["bookinfo.example.com", "*.bookinfo.example.com"],
        [],
    )
    assert _sans(_leaf(out, "httpbin-credential"))[0] == ["httpbin.example.com"]
    assert _sans(_leaf(out, "helloworld-credential"))[0] == ["helloworld.example.com"]


def test_tier1_client_certificate_is_for_client_auth(out: Path) -> None:
    """tier1-client has CN tier1-gateway and the clientAuth EKU only."""
    leaf = _leaf(out, "tier1-client")
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "tier1-gateway"
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_layout_and_permissions(out: Path) -> None:
    """Each credential dir holds tls.crt, tls.key (0600) and a copy of the CA; ca.key is 0600."""
    ca_pem = (out / "ca.crt").read_bytes()
    assert stat.S_IMODE(os.stat(out / "ca.key").st_mode) == 0o600
    for name in LEAVES:
        folder = out / name
        assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
        assert (folder / "ca.crt").read_bytes() == ca_pem
        assert stat.S_IMODE(os.stat(folder / "tls.key").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(folder / "tls.crt").st_mode) == 0o644


def test_serials_are_random_and_distinct(out: Path) -> None:
    """Every certificate gets its own large random serial."""
    serials = {_leaf(out, n).serial_number for n in LEAVES} | {_cert(out / "ca.crt").serial_number}
    assert len(serials) == len(LEAVES) + 1
    assert all(s.bit_length() > 64 for s in serials)


def test_second_run_keeps_everything(out: Path) -> None:
    """Re-running with valid material changes no file."""
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    actions = generate.generate_lab_certs(out, now=NOW + dt.timedelta(days=10))
    assert set(actions.values()) == {"kept"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_leaves_within_30_days_of_expiry_are_reissued(out: Path) -> None:
    """A leaf with 30 days or less left is re-issued under the kept CA."""
    later = NOW + dt.timedelta(days=336)
    actions = generate.generate_lab_certs(out, now=later)
    assert actions["ca"] == "kept"
    assert all(actions[n] == "issued" for n in LEAVES)
    assert _leaf(out, "tier2-credential").not_valid_after_utc == later + dt.timedelta(days=365)


def test_force_reissues_ca_and_leaves(out: Path) -> None:
    """--force replaces the CA, so every leaf is re-signed by the new one."""
    old_ca = _cert(out / "ca.crt")
    assert set(generate.generate_lab_certs(out, force=True, now=NOW).values()) == {"issued"}
    new_ca = _cert(out / "ca.crt")
    assert new_ca.serial_number != old_ca.serial_number
    _leaf(out, "bookinfo-credential").verify_directly_issued_by(new_ca)


def test_damaged_or_mismatched_leaf_is_reissued(out: Path) -> None:
    """Garbage in tls.crt or a key that does not match triggers re-issue of that leaf only."""
    (out / "httpbin-credential" / "tls.crt").write_bytes(b"garbage")
    other_key = (out / "bookinfo-credential" / "tls.key").read_bytes()
    (out / "helloworld-credential" / "tls.key").write_bytes(other_key)
    actions = generate.generate_lab_certs(out, now=NOW)
    assert actions["httpbin-credential"] == "issued"
    assert actions["helloworld-credential"] == "issued"
    assert actions["bookinfo-credential"] == "kept"


def test_rotate_reissues_one_leaf_in_place(out: Path) -> None:
    """Rotation gives a new serial and key for one credential, touches no other, leaves no temp."""
    folder = out / "tier2-credential"
    old_serial = _leaf(out, "tier2-credential").serial_number
    old_key = (folder / "tls.key").read_bytes()
    others = {n: _leaf(out, n).serial_number for n in LEAVES if n != "tier2-credential"}
    cert = generate.rotate_credential(out, "tier2-credential", now=NOW + dt.timedelta(days=1))
    assert cert.serial_number == _leaf(out, "tier2-credential").serial_number != old_serial
    assert (folder / "tls.key").read_bytes() != old_key
    assert _sans(cert) == _sans(_leaf(out, "tier2-credential"))
    assert {n: _leaf(out, n).serial_number for n in others} == others
    assert sorted(p.name for p in folder.iterdir()) == ["ca.crt", "tls.crt", "tls.key"]
    assert stat.S_IMODE(os.stat(folder / "tls.key").st_mode) == 0o600


def test_rotate_unknown_credential_fails(out: Path) -> None:
    """Rotating a name that is not in the table raises KeyError naming the known ones."""
    with pytest.raises(KeyError, match="tier1-client"):
        generate.rotate_credential(out, "nope")


def test_write_atomic_replaces_the_inode(tmp_path: Path) -> None:
    """write_atomic swaps in a new file (new inode) with the requested mode."""
    target = tmp_path / "f.pem"
    target.write_bytes(b"old")
    inode = target.stat().st_ino
    generate.write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f.pem"]


def test_ensure_lab_certs_returns_the_directory(tmp_path: Path) -> None:
    """ensure_lab_certs creates the material and returns the directory it was asked for."""
    target = tmp_path / "x"
    assert generate.ensure_lab_certs(target) == target
    assert (target / "tier1-client" / "tls.key").is_file()
    assert generate.ensure_lab_certs(target) == target


def test_cli_generate_then_rotate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main() prints what it did; --rotate reports the new serial."""
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert "issued tier2-credential" in capsys.readouterr().out
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert "kept   tier2-credential" in capsys.readouterr().out
    assert generate.main(["--out", str(tmp_path), "--rotate", "tier1-client"]) == 0
    serial = _leaf(tmp_path, "tier1-client").serial_number
    assert capsys.readouterr().out.strip() == f"rotated tier1-client: serial {serial:x}"


def test_module_runs_with_python_dash_m(tmp_path: Path) -> None:
    """`python -m certs.generate --out DIR` works from the repository root."""
    done = subprocess.run(
        [sys.executable, "-m", "certs.generate", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert _sans(_leaf(tmp_path, "tier2-credential"))[1][0] == "127.0.0.1"
