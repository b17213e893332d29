"""Control path: JSON Web Key Sets parsed once into verification keys (``KeySet``).

A key set is parsed when a configuration is compiled (inline ``jwks``) or when a ``jwksUri``
answer arrives, never per request. Each key is stored with the algorithms its type allows, so a
token's ``alg`` header can only pick among those (the key decides, not the token):

* ``RSA``: RS256/384/512 and PS256/384/512;
* ``EC``: ES256 with P-256, ES384 with P-384, ES512 with P-521;
* ``OKP``: EdDSA with Ed25519.

A JWK's own ``alg`` narrows that to one algorithm. Symmetric keys (``oct``), keys with
``use`` other than ``sig`` and keys that fail to parse are skipped with a note; a set in which no
key is usable is an error. Private parts of a JWK are dropped: only the public key is kept.
Signature checks use PyJWT's algorithm implementations (``cryptography`` underneath). Both are
imported at the first key parsed, not with this module: a gateway without JWT rules (and every
worker process of one) never loads them, about 12 MiB of resident memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jwt.algorithms import Algorithm

MAX_JWKS_BYTES = 1 << 20
"""A larger key set is refused: no issuer publishes megabytes of keys."""

ALGORITHM_NAMES = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Every algorithm a token may use. ``none`` and the HMAC family are absent on purpose."""

_ALGORITHMS: dict[str, Algorithm] = {}


def algorithm(name: str) -> Algorithm:
    """PyJWT's implementation of ``name`` (one of ``ALGORITHM_NAMES``). A key set has been
    parsed before any token is verified, so PyJWT is loaded by then."""
    if not _ALGORITHMS:
        from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

        _ALGORITHMS.update(
            {
                "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
                "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
                "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
                "PS256": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
                "PS384": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA384),
                "PS512": RSAPSSAlgorithm(RSAPSSAlgorithm.SHA512),
                "ES256": ECAlgorithm(ECAlgorithm.SHA256),
                "ES384": ECAlgorithm(ECAlgorithm.SHA384),
                "ES512": ECAlgorithm(ECAlgorithm.SHA512),
                "EdDSA": OKPAlgorithm(),
            }
        )
    return _ALGORITHMS[name]


_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class JwksError(ValueError):
    """The document is not a usable JSON Web Key Set."""


@dataclass(frozen=True, slots=True)
class Jwk:
    """One verification key: its ``kid`` (``""`` when absent) and the algorithms it allows."""

    kid: str
    kty: str
    algorithms: frozenset[str]
    key: Any
    """The ``cryptography`` public key object."""
    source: str = field(default="", repr=False, compare=False)
    """The key's JSON: key objects cannot be pickled, so a pickled ``Jwk`` (a compiled snapshot
    handed to the workers) is parsed again from it."""

    def __reduce__(self) -> tuple[Callable[[str], Jwk], tuple[str]]:
        return _jwk_from_json, (self.source,)


@dataclass(frozen=True, slots=True)
class KeySet:
    keys: tuple[Jwk, ...]

    def candidates(self, kid: str, alg: str) -> list[Jwk]:
        """Keys that may verify a token with this ``kid`` and ``alg`` (jwt_verify_lib's rule: a
        key without ``kid`` matches any token, a token without ``kid`` tries every key)."""
        return [
            k for k in self.keys if alg in k.algorithms and (not kid or not k.kid or k.kid == kid)
        ]

    def has_kid(self, kid: str) -> bool:
        return any(k.kid == kid or not k.kid for k in self.keys)

    def describe(self) -> list[dict[str, object]]:
        return [{"kid": k.kid, "kty": k.kty, "algorithms": sorted(k.algorithms)} for k in self.keys]


def parse_jwks(text: str | bytes) -> tuple[KeySet, list[str]]:
    """The usable keys of a JWKS document and a note per skipped key; ``JwksError`` when the
    document is malformed or has no usable key."""
    if len(text) > MAX_JWKS_BYTES:
        raise JwksError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JwksError(f"JWKS is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise JwksError('JWKS must be a JSON object with a "keys" list')
    keys: list[Jwk] = []
    notes: list[str] = []
    kids: set[str] = set()
    for index, raw in enumerate(doc["keys"]):
        try:
            jwk = parse_jwk(raw)
        except JwksError as exc:
            notes.append(f"keys[{index}] skipped: {exc}")
            continue
        if jwk.kid and jwk.kid in kids:
            notes.append(f"keys[{index}]: kid {jwk.kid!r} repeats; every key with it is tried")
        kids.add(jwk.kid)
        keys.append(jwk)
    if not keys:
        raise JwksError("JWKS has no usable key" + (f" ({'; '.join(notes)})" if notes else ""))
    return KeySet(tuple(keys)), notes


def parse_jwk(raw: object) -> Jwk:
    if not isinstance(raw, dict):
        raise JwksError("a key must be a JSON object")
    kty, kid, alg, use = (raw.get(name, "") for name in ("kty", "kid", "alg", "use"))
    if not all(isinstance(v, str) for v in (kty, kid, alg, use)):
        raise JwksError("kty, kid, alg and use must be strings")
    if use and use != "sig":
        raise JwksError(f"use {use!r} is not sig")
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    allowed: frozenset[str]
    try:
        if kty == "RSA":
            key = _public(RSAAlgorithm.from_jwk(raw))
            if not isinstance(key, rsa.RSAPublicKey):
                raise JwksError("not an RSA key")
            allowed = _RSA_ALGS
        elif kty == "EC":
            key = _public(ECAlgorithm.from_jwk(raw))
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise JwksError("not an EC key")
            allowed = frozenset({_EC_ALGS[raw["crv"]]})
        elif kty == "OKP":
            if raw.get("crv") != "Ed25519":
                raise JwksError(f"OKP curve {raw.get('crv')!r} is not supported (Ed25519 is)")
            key = _public(OKPAlgorithm.from_jwk(raw))
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise JwksError("not an Ed25519 key")
            allowed = frozenset({"EdDSA"})
        else:
            raise JwksError(f"key type {kty!r} is not supported (RSA, EC and OKP are)")
    except JwksError:
        raise
    except Exception as exc:  # PyJWT and cryptography raise several types for bad keys
        raise JwksError(f"invalid {kty} key: {exc}") from None
    if alg:
        if alg not in allowed:
            raise JwksError(f"alg {alg!r} does not fit a {kty} key")
        allowed = frozenset({alg})
    source = json.dumps(raw, sort_keys=True, separators=(",", ":"))
    return Jwk(kid=kid, kty=kty, algorithms=allowed, key=key, source=source)


def _jwk_from_json(source: str) -> Jwk:
    return parse_jwk(json.loads(source))


def _public(key: Any) -> Any:
    public = getattr(key, "public_key", None)
    return public() if callable(public) and not _is_public(key) else key


def _is_public(key: Any) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    return isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
