"""Data path: parse and verify one JWT the way Envoy's jwt_authn does (jwt_verify_lib).

``parse_jwt`` splits and decodes the token; ``check_claims`` applies the time and audience
checks; ``verify_signature`` tries the key set's keys that fit the token's ``kid`` and ``alg``.
Every failure is a ``JwtFailure`` whose message is Envoy's status string, which the filter
sends as the 401 body (``Jwt is expired``, ``Jwt verification fails``, ...).

Times: ``exp`` and ``nbf`` (and ``iat``, see docs/security.md) are compared with the injected
wall clock and ``CLOCK_SKEW`` seconds of tolerance (Envoy's default ``clock_skew_seconds``).
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from gateway_core.security.jwks import ALGORITHM_NAMES, KeySet, algorithm

CLOCK_SKEW = 60
"""Seconds of tolerance for ``exp``/``nbf``/``iat`` (Envoy's default)."""

# Envoy's statuses (jwt_verify_lib status strings), the 401 (or 403) bodies.
BAD_FORMAT = "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
HEADER_BAD_BASE64 = "Jwt header is an invalid Base64url encoded"
HEADER_BAD_JSON = "Jwt header is an invalid JSON"
HEADER_BAD_ALG = "Jwt header [alg] field is required and must be a string"
HEADER_ALG_NOT_IMPLEMENTED = "Jwt header [alg] is not supported"
HEADER_BAD_KID = "Jwt header [kid] field is not a string"
PAYLOAD_BAD_BASE64 = "Jwt payload is an invalid Base64url encoded"
PAYLOAD_BAD_JSON = "Jwt payload is an invalid JSON"
SIGNATURE_BAD_BASE64 = "Jwt signature is an invalid Base64url encoded"
UNKNOWN_ISSUER = "Jwt issuer is not configured"
NOT_YET_VALID = "Jwt not yet valid"
EXPIRED = "Jwt is expired"
AUDIENCE_NOT_ALLOWED = "Audiences in Jwt are not allowed"
VERIFICATION_FAILS = "Jwt verification fails"
KID_ALG_MISMATCH = "Jwks doesn't have key to match kid or alg from Jwt"
JWKS_FETCH_FAILED = "Jwks remote fetch is failed"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_TO_STANDARD = str.maketrans("-_", "+/")


class JwtFailure(Exception):
    """A token that cannot be accepted; ``str()`` is Envoy's message, ``reason`` a short metric
    label."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedJwt:
    alg: str
    kid: str
    payload: dict[str, Any]
    payload_segment: str
    signing_input: bytes
    signature: bytes

    @property
    def issuer(self) -> str:
        iss = self.payload.get("iss", "")
        return iss if isinstance(iss, str) else ""


def parse_jwt(token: str) -> ParsedJwt:
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtFailure(BAD_FORMAT, "malformed")
    header = _json_segment(parts[0], HEADER_BAD_BASE64, HEADER_BAD_JSON)
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise JwtFailure(HEADER_BAD_ALG, "malformed")
    if alg not in ALGORITHM_NAMES:
        raise JwtFailure(HEADER_ALG_NOT_IMPLEMENTED, "unsupported_alg")
    kid = header.get("kid", "")
    if not isinstance(kid, str):
        raise JwtFailure(HEADER_BAD_KID, "malformed")
    payload = _json_segment(parts[1], PAYLOAD_BAD_BASE64, PAYLOAD_BAD_JSON)
    for name in ("iss", "sub", "jti", "azp"):
        if name in payload and not isinstance(payload[name], str):
            raise JwtFailure(f"Jwt payload [{name}] field is not a string", "malformed")
    for name in ("exp", "nbf", "iat"):
        value = payload.get(name)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise JwtFailure(f"Jwt payload [{name}] field is not an integer", "malformed")
    aud = payload.get("aud")
    if aud is not None and not (
        isinstance(aud, str) or (isinstance(aud, list) and all(isinstance(a, str) for a in aud))
    ):
        raise JwtFailure("Jwt payload [aud] field is not a string or string list", "malformed")
    signature = _b64(parts[2], SIGNATURE_BAD_BASE64)
    signing_input = (parts[0] + "." + parts[1]).encode("ascii")
    return ParsedJwt(alg, kid, payload, parts[1], signing_input, signature)


def check_claims(jwt: ParsedJwt, now: float, audiences: Collection[str]) -> None:
    """Envoy's order: time constraints, then audiences."""
    payload = jwt.payload
    nbf, exp, iat = payload.get("nbf"), payload.get("exp"), payload.get("iat")
    if nbf is not None and now + CLOCK_SKEW < nbf:
        raise JwtFailure(NOT_YET_VALID, "not_yet_valid")
    if iat is not None and now + CLOCK_SKEW < iat:
        raise JwtFailure(NOT_YET_VALID, "not_yet_valid")
    if exp is not None and now > exp + CLOCK_SKEW:
        raise JwtFailure(EXPIRED, "expired")
    if audiences:
        aud = payload.get("aud")
        given = [aud] if isinstance(aud, str) else aud or []
        if not any(_sanitize(a) in audiences for a in given):
            raise JwtFailure(AUDIENCE_NOT_ALLOWED, "audience")


def sanitize_audiences(audiences: Collection[str]) -> frozenset[str]:
    """jwt_verify_lib compares audiences without ``http(s)://`` and a trailing ``/``."""
    return frozenset(_sanitize(a) for a in audiences)


def _sanitize(aud: str) -> str:
    for scheme in ("https://", "http://"):
        if aud.startswith(scheme):
            aud = aud[len(scheme) :]
            break
    return aud.removesuffix("/")


def verify_signature(jwt: ParsedJwt, keys: KeySet) -> None:
    """Some key of ``keys`` that fits the token's ``kid`` and ``alg`` must verify it."""
    candidates = keys.candidates(jwt.kid, jwt.alg)
    if not candidates:
        raise JwtFailure(KID_ALG_MISMATCH, "unknown_kid")
    verifier = algorithm(jwt.alg)
    for key in candidates:
        try:
            if verifier.verify(jwt.signing_input, key.key, jwt.signature):
                return
        except (ValueError, TypeError):  # a signature of the wrong size for the key
            continue
    raise JwtFailure(VERIFICATION_FAILS, "verification_failed")


def _json_segment(segment: str, bad_base64: str, bad_json: str) -> dict[str, Any]:
    raw = _b64(segment, bad_base64)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JwtFailure(bad_json, "malformed") from None
    if not isinstance(value, dict):
        raise JwtFailure(bad_json, "malformed")
    return value


def _b64(segment: str, message: str) -> bytes:
    """Base64url without padding, strictly: padding, other alphabets or junk are refused."""
    if len(segment) % 4 == 1 or _B64URL.fullmatch(segment) is None:
        raise JwtFailure(message, "malformed")
    try:
        return binascii.a2b_base64((segment + "=" * (-len(segment) % 4)).translate(_TO_STANDARD))
    except (binascii.Error, ValueError):
        raise JwtFailure(message, "malformed") from None
