"""Tests: JWT parsing and verification (security/jwt_token.py) and JWKS parsing (jwks.py), with
Envoy's messages, and the hostile tokens and key sets of issue 11 part 9."""

from __future__ import annotations

import json

import pytest

from gateway_core.security import jwt_token as t
from gateway_core.security.jwks import JwksError, KeySet, parse_jwks
from tests.gateway_core.security.jwt_kit import (
    NOW,
    KeyPair,
    b64,
    forged,
    hs256_with_public_key,
    jwks,
)


def _verify(
    token: str, keys: KeySet, *, now: float = NOW, audiences: frozenset[str] = frozenset()
) -> t.ParsedJwt:
    parsed = t.parse_jwt(token)
    t.check_claims(parsed, now, audiences)
    t.verify_signature(parsed, keys)
    return parsed


def _failure(token: str, keys: KeySet, **kw: object) -> str:
    with pytest.raises(t.JwtFailure) as err:
        _verify(token, keys, **kw)  # type: ignore[arg-type]
    return str(err.value)


@pytest.fixture(scope="module")
def rsa_pair() -> KeyPair:
    return KeyPair.make("RSA", "rsa-1")


@pytest.mark.parametrize(
    ("kind", "curve", "alg"),
    [
        ("RSA", "", "RS256"),
        ("RSA", "", "RS384"),
        ("RSA", "", "RS512"),
        ("RSA", "", "PS256"),
        ("EC", "P-256", "ES256"),
        ("EC", "P-384", "ES384"),
        ("OKP", "", "EdDSA"),
    ],
)
def test_every_supported_algorithm_verifies(kind: str, curve: str, alg: str) -> None:
    pair = KeyPair.make(kind, "k", curve=curve or "P-256")
    keys, notes = parse_jwks(jwks(pair))
    assert notes == []
    parsed = _verify(pair.mint({"sub": "jason"}, alg=alg), keys)
    assert parsed.payload["sub"] == "jason"
    assert parsed.alg == alg


def test_alg_none_is_refused(rsa_pair: KeyPair) -> None:
    keys, _ = parse_jwks(jwks(rsa_pair))
    token = forged({"alg": "none", "kid": "rsa-1"}, {"iss": "https://issuer.test"})
    assert _failure(token, keys) == "Jwt header [alg] is not supported"
    # Spelled differently, or without a signature segment at all: refused too.
    assert _failure(forged({"alg": "None"}, {}), keys) == "Jwt header [alg] is not supported"
    assert _failure(token.rsplit(".", 1)[0], keys) == t.BAD_FORMAT


def test_hs256_signed_with_the_rsa_public_key_is_refused(rsa_pair: KeyPair) -> None:
    """Algorithm confusion: no HMAC algorithm is accepted at all, and a key (RSA) decides the
    algorithms it verifies, never the token's header."""
    keys, _ = parse_jwks(jwks(rsa_pair))
    token = hs256_with_public_key(rsa_pair, {})
    assert _failure(token, keys) == "Jwt header [alg] is not supported"


def test_a_key_decides_its_algorithms(rsa_pair: KeyPair) -> None:
    """An RS256 key does not verify an ES256 header; a JWK's own alg narrows the set."""
    ec_pair = KeyPair.make("EC", "rsa-1")
    keys, _ = parse_jwks(jwks(rsa_pair))
    assert _failure(ec_pair.mint(), keys) == t.KID_ALG_MISMATCH
    narrowed, _ = parse_jwks(json.dumps({"keys": [rsa_pair.jwk(alg="RS256")]}))
    assert _failure(rsa_pair.mint(alg="PS256"), narrowed) == t.KID_ALG_MISMATCH
    _verify(rsa_pair.mint(alg="RS256"), narrowed)


def test_time_claims_with_the_clock_skew(rsa_pair: KeyPair) -> None:
    keys, _ = parse_jwks(jwks(rsa_pair))
    expired = rsa_pair.mint({"exp": NOW - 61})
    assert _failure(expired, keys) == "Jwt is expired"
    _verify(rsa_pair.mint({"exp": NOW - 59}), keys)  # within the 60 s skew
    early = rsa_pair.mint({"nbf": NOW + 61})
    assert _failure(early, keys) == "Jwt not yet valid"
    _verify(rsa_pair.mint({"nbf": NOW + 59}), keys)
    future_iat = rsa_pair.mint({"iat": NOW + 3600})
    assert _failure(future_iat, keys) == "Jwt not yet valid"
    assert _failure(rsa_pair.mint({"exp": "tomorrow"}), keys) == (
        "Jwt payload [exp] field is not an integer"
    )
    _verify(rsa_pair.mint({"exp": None}), keys)  # no exp: Envoy accepts it


def test_audiences_as_jwt_verify_lib_compares_them(rsa_pair: KeyPair) -> None:
    keys, _ = parse_jwks(jwks(rsa_pair))
    allowed = t.sanitize_audiences(["https://api.example.com/"])
    _verify(rsa_pair.mint({"aud": "api.example.com"}), keys, audiences=allowed)
    _verify(rsa_pair.mint({"aud": ["other", "http://api.example.com"]}), keys, audiences=allowed)
    wrong = rsa_pair.mint({"aud": "other"})
    assert _failure(wrong, keys, audiences=allowed) == "Audiences in Jwt are not allowed"
    assert _failure(rsa_pair.mint(), keys, audiences=allowed) == t.AUDIENCE_NOT_ALLOWED


def test_bad_signature_truncated_and_malformed(rsa_pair: KeyPair) -> None:
    keys, _ = parse_jwks(jwks(rsa_pair))
    good = rsa_pair.mint()
    header, payload, signature = good.split(".")
    other = KeyPair.make("RSA", "rsa-1").mint()
    assert _failure(f"{header}.{payload}.{other.split('.')[2]}", keys) == t.VERIFICATION_FAILS
    assert _failure(f"{header}.{payload}.{signature[:-10]}", keys) == t.VERIFICATION_FAILS
    assert _failure(good[: len(header) + 1 + len(payload) // 2], keys) == t.BAD_FORMAT
    cut = f"{header}.{payload[: (len(payload) // 4 - 1) * 4 + 1]}.{signature}"
    assert _failure(cut, keys) == t.PAYLOAD_BAD_BASE64
    assert _failure(f"{header}.{payload}.{signature}!", keys) == t.SIGNATURE_BAD_BASE64
    assert _failure(f"{header}=.{payload}.{signature}", keys) == t.HEADER_BAD_BASE64
    assert _failure(f"{header}.%%%.{signature}", keys) == t.PAYLOAD_BAD_BASE64
    assert _failure(f"{b64(b'not json')}.{payload}.{signature}", keys) == t.HEADER_BAD_JSON
    assert _failure(f"{header}.{b64(b'[1,2]')}.{signature}", keys) == t.PAYLOAD_BAD_JSON
    assert _failure("deadbeef", keys) == t.BAD_FORMAT
    assert _failure(forged({"kid": "x"}, {}), keys) == t.HEADER_BAD_ALG
    assert _failure(forged({"alg": "RS256", "kid": 7}, {}), keys) == t.HEADER_BAD_KID
    assert _failure(forged({"alg": "RS256"}, {"iss": 7}), keys) == (
        "Jwt payload [iss] field is not a string"
    )


def test_a_20_kb_token_is_answered_quickly(rsa_pair: KeyPair) -> None:
    """A 20 KB token (big claims, or junk) is parsed in bounded time and refused."""
    keys, _ = parse_jwks(jwks(rsa_pair))
    big = rsa_pair.mint({"junk": "x" * 20000})
    assert len(big) > 20000
    header, payload, _ = big.split(".")
    assert _failure(f"{header}.{payload}.{b64(b'0' * 256)}", keys) == t.VERIFICATION_FAILS
    _verify(big, keys)  # a genuine large token is still valid, as in Envoy
    assert _failure("A" * 20480, keys) == t.BAD_FORMAT


def test_jwks_duplicate_kids_are_all_tried() -> None:
    first, second = KeyPair.make("RSA", "same"), KeyPair.make("EC", "same")
    third = KeyPair.make("RSA", "same")
    keys, notes = parse_jwks(jwks(first, second, third))
    assert any("repeats" in n for n in notes)
    _verify(third.mint(), keys)  # the second RSA key with that kid verifies it
    _verify(second.mint(), keys)


def test_jwks_unsupported_key_types_are_skipped() -> None:
    pair = KeyPair.make("RSA", "ok")
    extra = [
        {"kty": "oct", "kid": "secret", "k": b64(b"shared-secret")},
        {"kty": "EC", "kid": "k256", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "OKP", "kid": "x448", "crv": "X448", "x": "AA"},
        {
            "kty": "RSA",
            "kid": "enc",
            "use": "enc",
            **{k: v for k, v in pair.jwk().items() if k in "ne"},
        },
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
    ]
    keys, notes = parse_jwks(jwks(pair, extra_keys=extra))
    assert [k.kid for k in keys.keys] == ["ok"]
    assert len(notes) == len(extra)
    assert "key type 'oct' is not supported" in notes[0]
    # An HS256 token "signed" with the oct secret is refused.
    with pytest.raises(t.JwtFailure, match=r"Jwt header \[alg\] is not supported"):
        t.verify_signature(t.parse_jwt(forged({"alg": "HS256", "kid": "secret"}, {}, b"x")), keys)


@pytest.mark.parametrize(
    "document",
    ["", "garbage", "[]", '{"keys": {}}', '{"keys": []}', '{"keys": [{"kty": "oct", "k": "AA"}]}'],
)
def test_unusable_jwks_documents(document: str) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document)


def test_remembered_tokens_count_only_under_their_rule_and_key_set() -> None:
    """The filter's cache of verified tokens: a hit needs the same rule and the same key set
    object; the times are checked on every request; the cache is bounded."""
    from gateway_core.routing.request import RequestHead
    from gateway_core.security import jwks_store
    from gateway_core.security.authn import JwtAuthnSpec, JwtRuleSpec, authenticate

    pair = KeyPair.make("EC", "e")
    keys, _ = parse_jwks(jwks(pair))
    spec = JwtAuthnSpec((JwtRuleSpec(issuer="https://issuer.test", source="s", inline_keys=keys),))
    store = jwks_store.JwksStore(wall=lambda: NOW)
    token = pair.mint()

    class Ex:
        def __init__(self) -> None:
            self.auth = None
            self.answer: tuple[object, ...] = ()
            raw = [(b"authorization", b"Bearer " + token.encode())]
            self.req = RequestHead(b"GET", b"/", b"", b"h", b"http", 80, raw)

        def local_reply(self, *args: object, **kw: object) -> None:
            self.answer = args

    assert authenticate(Ex(), spec, store) is False
    hit = store.recall(token)
    assert hit is not None and hit[1] is spec.rules[0] and hit[2] is keys
    assert authenticate(Ex(), spec, store) is False  # from the cache
    # A new compile (a reload) has new rule objects: the entry does not count for them.
    again, _ = parse_jwks(jwks(pair))
    other = JwtAuthnSpec(
        (JwtRuleSpec(issuer="https://issuer.test", source="s", inline_keys=again),)
    )
    assert authenticate(Ex(), other, store) is False
    assert store.recall(token)[1] is other.rules[0]  # type: ignore[index]
    # Time goes on: a remembered token still expires.
    store._wall = lambda: NOW + 3600 + 61
    ex = Ex()
    assert authenticate(ex, other, store) is True
    assert ex.answer[0] == 401 and ex.answer[2] == b"Jwt is expired"
    store.remember("x" * (jwks_store.VERIFIED_MAX_TOKEN + 1), hit)
    assert store.recall("x" * (jwks_store.VERIFIED_MAX_TOKEN + 1)) is None
    for i in range(jwks_store.VERIFIED_ENTRIES):
        store.remember(f"t{i}", hit)
    assert len(store._verified) <= jwks_store.VERIFIED_ENTRIES
