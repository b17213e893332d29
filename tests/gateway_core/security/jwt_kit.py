"""Tests: key pairs, JWKS documents and tokens minted with PyJWT's encoder (not the gateway's
code), plus hand-made hostile tokens."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test"
NOW = 1_800_000_000.0


@dataclass
class KeyPair:
    kind: str
    private: Any
    kid: str

    @classmethod
    def make(cls, kind: str = "RSA", kid: str = "k1", *, curve: str = "P-256") -> KeyPair:
        key: Any
        if kind == "RSA":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif kind == "EC":
            key = ec.generate_private_key(ec.SECP384R1() if curve == "P-384" else ec.SECP256R1())
        else:
            key = ed25519.Ed25519PrivateKey.generate()
        return cls(kind, key, kid)

    def jwk(self, **extra: str) -> dict[str, Any]:
        public = self.private.public_key()
        codec = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}[self.kind]
        out: dict[str, Any] = codec.to_jwk(public, as_dict=True)
        out["kid"] = self.kid
        out.update(extra)
        return out

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def mint(
        self, claims: dict[str, Any] | None = None, *, alg: str = "", kid: str | None = None
    ) -> str:
        default = {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[self.kind]
        body = {"iss": ISSUER, "sub": "user-1", "exp": NOW + 3600, **(claims or {})}
        headers = {"kid": self.kid if kid is None else kid}
        return jwt.encode(body, self.private, algorithm=alg or default, headers=headers)


def jwks(*pairs: KeyPair, extra_keys: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"keys": [p.jwk() for p in pairs] + (extra_keys or [])})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A token with any header (``alg: none``, ...) and the given signature bytes."""
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def hs256_with_public_key(pair: KeyPair, claims: dict[str, Any]) -> str:
    """The algorithm-confusion attack: HS256 with the RSA public key's PEM as the secret
    (hand-made: PyJWT itself refuses to sign with a PEM key as an HMAC secret)."""
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "kid": pair.kid, "typ": "JWT"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "sub": "attacker", "exp": NOW + 3600, **claims}).encode())
    signing_input = f"{header}.{body}".encode()
    mac = hmac.new(pair.public_pem(), signing_input, hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"
