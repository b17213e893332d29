"""Lab: the lab's JWT issuer — a key pair under the workdir, its JWKS, and tokens for users.

``gateway-lab up`` creates ``WORKDIR/jwt/issuer.key`` (an ECDSA P-256 private key, mode 0600,
kept across runs like the certificates) and serves the public half as a JWKS at
``http://127.0.0.1:15999/jwks.json`` (the lab control API); the gateways' RequestAuthentication
(``deploy/lab/tier1``, ``deploy/lab/tier2``) fetch it through ``jwksUri``. ``gateway-lab token``
mints a token for that issuer (PyJWT). The key is generated, never committed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from hashlib import sha256
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt.utils import base64url_encode

ISSUER = "https://issuer.gateway-lab.local"
AUDIENCE = "bookinfo.example.com"
KEY_FILE = "issuer.key"
DEFAULT_TTL = 3600


def key_path(workdir: Path) -> Path:
    return workdir / "jwt" / KEY_FILE


def ensure_issuer_key(workdir: Path) -> bool:
    """Create the issuer's key if there is none; True when a new one was written."""
    path = key_path(workdir)
    if path.exists():
        _load(path)  # a damaged key fails here, loudly, rather than at the first token
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".issuer-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True


def _load(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def public_jwk(workdir: Path) -> dict[str, Any]:
    key = _load(key_path(workdir)).public_key()
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    jwk.update(kid=kid_of(jwk), alg="ES256", use="sig")
    return jwk


def jwks_document(workdir: Path) -> str:
    return json.dumps({"keys": [public_jwk(workdir)]})


def kid_of(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of the public key."""

    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    digest = sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return base64url_encode(digest.digest()).decode()


def mint(
    workdir: Path,
    user: str,
    groups: list[str],
    *,
    ttl: int = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """A token of the lab issuer: ``sub`` = user, ``groups``, audience the bookinfo host."""
    path = key_path(workdir)
    if not path.exists():
        raise FileNotFoundError(f"no lab issuer key at {path}: start the lab (gateway-lab up)")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user,
        "aud": AUDIENCE,
        "iat": issued,
        "exp": issued + ttl,
    }
    if groups:
        claims["groups"] = groups
    jwk = public_jwk(workdir)
    return jwt.encode(claims, _load(path), algorithm="ES256", headers={"kid": jwk["kid"]})
