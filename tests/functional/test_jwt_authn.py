"""Functional: RequestAuthentication through a real gateway on loopback: Istio's outcomes (no token
passes without a principal, a bad token gets 401), header handling, claim-based routing,
hostile tokens, and the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.support import CaptureUpstream, capture_upstream, config, get, metric_samples
from tests.gateway_core.security.jwt_kit import (
    ISSUER,
    KeyPair,
    b64,
    forged,
    hs256_with_public_key,
    jwks,
)

RULES = """\
  - match:
    - headers:
        "@request.auth.claims.groups": {exact: admins}
    route: [{destination: {host: v2.svc}}]
  - match:
    - headers:
        "@request.auth.claims.profile.tier": {prefix: gold}
    route: [{destination: {host: v2.svc}}]
  - route: [{destination: {host: v1.svc}}]"""


def request_authentication(jwks_text: str, *, extra: str = "") -> str:
    return f"""---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [api.test]
    jwks: '{jwks_text}'
    outputClaimToHeaders:
    - {{header: x-jwt-sub, claim: sub}}
    - {{header: x-jwt-tier, claim: profile.tier}}
{extra}"""


def claims(**extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"aud": "api.test", "iat": int(now), "exp": int(now) + 600, **extra}


async def _start(
    gateway: Callable[..., Any], v1: CaptureUpstream, v2: CaptureUpstream, pair: KeyPair
) -> tuple[int, Any]:
    port = free_port()
    text = config(port, RULES, {"v1.svc": [v1.port], "v2.svc": [v2.port]})
    harness = await gateway(
        text + request_authentication(jwks(pair)), labels={"istio": "ingressgateway"}
    )
    return port, harness


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_istio_outcomes_headers_and_claim_routing(gateway: Callable[..., Any]) -> None:
    pair = KeyPair.make("RSA", "k1")
    async with capture_upstream() as v1, capture_upstream() as v2:
        port, harness = await _start(gateway, v1, v2, pair)
        # No token: accepted without a principal; a forged output header is removed.
        resp = await get(port, "/a", headers={"x-jwt-sub": "admin"})
        assert resp.status == 200
        assert v1.requests[-1].header(b"x-jwt-sub") is None
        # A bad token: 401 with Envoy's body and www-authenticate; nothing is forwarded.
        resp = await get(port, "/a?x=1", host="api.example", headers=bearer("deadbeef"))
        assert resp.status == 401
        assert resp.body == (
            b"Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
        )
        assert resp.header(b"www-authenticate") == (
            b'Bearer realm="http://api.example/a?x=1", error="invalid_token"'
        )
        assert resp.all(b"content-type") == [b"text/plain"]
        assert len(v1.requests) == 1
        # A good token: forwarded without it (forwardOriginalToken false), claims in headers.
        token = pair.mint(claims(sub="jason", profile={"tier": "silver"}))
        resp = await get(port, "/b", headers={**bearer(token), "x-jwt-sub": "forged"})
        assert resp.status == 200
        forwarded = v1.requests[-1]
        assert forwarded.header(b"authorization") is None
        assert forwarded.all(b"x-jwt-sub") == [b"jason"]
        assert forwarded.header(b"x-jwt-tier") == b"silver"
        # A claim with a line break is not written (no header injection), the request passes.
        evil = pair.mint(claims(sub="eve\r\nx-admin: 1", profile={"tier": "silver\n"}))
        assert (await get(port, "/b2", headers=bearer(evil))).status == 200
        forwarded = v1.requests[-1]
        assert (forwarded.header(b"x-jwt-sub"), forwarded.header(b"x-admin")) == (None, None)
        assert forwarded.header(b"x-jwt-tier") is None
        # Claim routing: a list claim matches when one element does; nested claims with '.'.
        admin = pair.mint(claims(sub="ann", groups=["dev", "admins"]))
        assert (await get(port, "/c", headers=bearer(admin))).status == 200
        gold = pair.mint(claims(sub="gil", profile={"tier": "gold-plus"}))
        assert (await get(port, "/d", headers=bearer(gold))).status == 200
        assert [r.target for r in v2.requests] == [b"/c", b"/d"]
        # The default query parameter access_token works too.
        assert (await get(port, f"/e?access_token={token}")).status == 200
        assert v1.requests[-1].target.startswith(b"/e?access_token=")
        # Unknown issuer: 401; wrong audience: 403 (Envoy's code for it).
        other = pair.mint(claims(iss="https://elsewhere"))
        resp = await get(port, "/f", headers=bearer(other))
        assert (resp.status, resp.body) == (401, b"Jwt issuer is not configured")
        resp = await get(port, "/f", headers=bearer(pair.mint(claims(aud="other"))))
        assert (resp.status, resp.body) == (403, b"Audiences in Jwt are not allowed")
        assert len(v1.requests) + len(v2.requests) == 6
        samples = await metric_samples(harness.admin)
    assert samples[("gateway_jwt_authn_authenticated_total", (("issuer", ISSUER),))] == 5
    failed = "gateway_jwt_authn_failed_total"
    assert samples[(failed, (("issuer", "-"), ("reason", "malformed")))] == 1
    assert samples[(failed, (("issuer", "-"), ("reason", "unknown_issuer")))] == 1
    assert samples[(failed, (("issuer", ISSUER), ("reason", "audience")))] == 1


async def test_hostile_tokens_get_401_and_the_gateway_keeps_serving(
    gateway: Callable[..., Any],
) -> None:
    """Issue 11 part 9: each hostile token gets Envoy's answer (never a 500), and a valid
    request right after each is still served."""
    pair = KeyPair.make("RSA", "k1")
    good = pair.mint(claims())
    header, payload, signature = good.split(".")
    now = time.time()
    hostile = {
        "alg none": (forged({"alg": "none", "kid": "k1"}, claims(iss=ISSUER)), 401),
        "HS256 with the RSA public key": (hs256_with_public_key(pair, claims()), 401),
        "expired": (pair.mint(claims(exp=int(now) - 120)), 401),
        "not yet valid": (pair.mint(claims(nbf=int(now) + 600)), 401),
        "wrong issuer": (pair.mint(claims(iss="https://evil.test")), 401),
        "wrong audience": (pair.mint(claims(aud="evil")), 403),
        "bad signature": (f"{header}.{payload}.{b64(b'x' * 256)}", 401),
        "truncated": (good[:-40], 401),
        "malformed base64": (f"{header}.{payload}.{signature[:-2]}!!", 401),
        "20 KB token": (pair.mint(claims(junk="x" * 20000))[:-8] + "AAAAAAAA", 401),
        "unknown kid": (KeyPair.make("RSA", "k9").mint(claims()), 401),
    }
    async with capture_upstream() as v1, capture_upstream() as v2:
        port, _ = await _start(gateway, v1, v2, pair)
        answers = {}
        for name, (token, _) in hostile.items():
            resp = await get(port, "/", headers=bearer(token))
            answers[name] = (resp.status, resp.body.decode())
            assert (await get(port, "/", headers=bearer(good))).status == 200, name
    assert {name: status for name, (status, _) in answers.items()} == {
        name: want for name, (_, want) in hostile.items()
    }
    assert answers["alg none"][1] == "Jwt header [alg] is not supported"
    assert answers["expired"][1] == "Jwt is expired"
    assert answers["not yet valid"][1] == "Jwt not yet valid"
    assert answers["bad signature"][1] == "Jwt verification fails"
    assert answers["unknown kid"][1] == "Jwks doesn't have key to match kid or alg from Jwt"
    assert len(v1.requests) == len(hostile)  # only the good requests went through


@pytest.mark.parametrize("location", ["header", "cookie"])
async def test_custom_locations_and_forwarding(gateway: Callable[..., Any], location: str) -> None:
    """fromHeaders with a prefix or fromCookies; forwardOriginalToken keeps the token, the
    payload goes to outputPayloadToHeader; the default Authorization header is then not read."""
    pair = KeyPair.make("EC", "e1")
    where = (
        "fromHeaders: [{name: x-token, prefix: 'Token '}]"
        if location == "header"
        else "fromCookies: [session]"
    )
    extra = f"""  - issuer: https://second.test
    jwks: '{jwks(pair)}'
    {where}
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
"""
    async with capture_upstream() as v1, capture_upstream() as v2:
        port = free_port()
        text = config(port, RULES, {"v1.svc": [v1.port], "v2.svc": [v2.port]})
        text += request_authentication(jwks(KeyPair.make("RSA", "r")), extra=extra)
        await gateway(text, labels={"istio": "ingressgateway"})
        token = pair.mint({"iss": "https://second.test", "exp": int(time.time()) + 60})
        sent = (
            {"x-token": f"Token {token}"}
            if location == "header"
            else {"cookie": f"a=b; session={token}; c=d"}
        )
        resp = await get(port, "/", headers=sent)
        assert resp.status == 200
        forwarded = v1.requests[-1]
        assert forwarded.header(b"x-jwt-payload") == token.split(".")[1].encode()
        kept = b"x-token" if location == "header" else b"cookie"
        assert token.encode() in (forwarded.header(kept) or b"")
        # This rule's token in the other rule's place (Authorization) names an issuer that is
        # not configured there.
        resp = await get(port, "/", headers=bearer(token))
        assert (resp.status, resp.body) == (401, b"Jwt issuer is not configured")
