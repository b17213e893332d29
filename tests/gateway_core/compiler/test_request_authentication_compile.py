"""Tests: which RequestAuthentications apply to this gateway (selector against its labels,
targetRef naming one of its Gateways), the compiled JWT filter, and claim matches in routes."""

from __future__ import annotations

import dataclasses

from gateway_core.routing.matchers import ExactMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.security.authn import DEFAULT_LOCATIONS, JwtAuthnSpec, TokenLocation
from gateway_core.security.principal import RequestAuth
from gateway_core.snapshot import NodeInfo
from tests.gateway_core.compiler.compiler_testkit import GATEWAY, NODE, snapshot, virtual_service
from tests.gateway_core.security.jwt_kit import KeyPair, jwks

KEYS = jwks(KeyPair.make("EC", "e1"))


def ra(name: str, where: str, rules: str = "") -> str:
    rules = rules or f"jwtRules: [{{issuer: {name}, jwks: '{KEYS}'}}]"
    return f"""---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: {name}, namespace: istio-system}}
spec:
  {where}
  {rules}
"""


ROUTE = virtual_service("  - route: [{destination: {host: a.svc}}]")


def issuers(text: str, labels: dict[str, str]) -> list[str]:
    snap = snapshot(GATEWAY + ROUTE + text, dataclasses.replace(NODE, labels=labels))
    if not snap.gateway_filters:
        return []
    (spec,) = snap.gateway_filters
    assert isinstance(spec, JwtAuthnSpec)
    return [r.issuer for r in spec.rules]


def test_selection_by_labels_and_target_refs() -> None:
    text = (
        ra("everyone", "selector: {}")
        + ra("no-selector", "")
        + ra("ingress", "selector: {matchLabels: {istio: ingressgateway}}")
        + ra("other", "selector: {matchLabels: {istio: ingressgateway, app: other}}")
        + ra("by-ref", "targetRef: {kind: Gateway, name: gw, namespace: default}")
        + ra("ref-elsewhere", "targetRef: {kind: Gateway, name: gw}")  # istio-system/gw
    )
    assert issuers(text, {"istio": "ingressgateway"}) == [
        "everyone",
        "no-selector",
        "ingress",
        "by-ref",
    ]
    assert issuers(text, {}) == ["everyone", "no-selector", "by-ref"]


def test_no_rule_means_no_filter_at_all() -> None:
    only_other = ra("other", "selector: {matchLabels: {app: x}}")
    assert snapshot(GATEWAY + ROUTE + only_other).gateway_filters == ()
    assert snapshot(GATEWAY + ROUTE).gateway_filters == ()


def test_compiled_rule() -> None:
    rules = f"""jwtRules:
  - issuer: https://idp
    audiences: [https://api.example.com/]
    jwks: '{KEYS}'
    fromHeaders: [{{name: X-Token, prefix: 'Bearer '}}]
    fromParams: [tok]
    fromCookies: [session]
    outputPayloadToHeader: X-Payload
    outputClaimToHeaders: [{{header: X-Tier, claim: profile.tier}}]
    forwardOriginalToken: true
  - issuer: https://other
    jwksUri: https://other/jwks.json"""
    snap = snapshot(GATEWAY + ROUTE + ra("r", "selector: {}", rules), NodeInfo())
    (spec,) = snap.gateway_filters
    assert isinstance(spec, JwtAuthnSpec)
    first, second = spec.rules
    assert first.audiences == {"api.example.com"}
    assert first.locations == (
        TokenLocation("header", "x-token", "Bearer "),
        TokenLocation("param", "tok"),
        TokenLocation("cookie", "session"),
    )
    assert first.inline_keys is not None and first.jwks_uri == ""
    assert (first.payload_header, first.claim_headers) == (
        b"x-payload",
        ((b"x-tier", ("profile", "tier")),),
    )
    assert first.forward
    assert second.locations == DEFAULT_LOCATIONS
    assert (second.jwks_uri, second.inline_keys, second.forward) == (
        "https://other/jwks.json",
        None,
        False,
    )
    assert spec.output_headers == {b"x-payload", b"x-tier"}
    assert (
        spec.describe()["rules"][0]["source"] == "RequestAuthentication/istio-system/r jwtRules[0]"
    )


def test_claim_matches_in_routes() -> None:
    rules = """\
  - match:
    - headers:
        "@request.auth.claims.groups": {exact: admins}
        x-env: {exact: prod}
      withoutHeaders:
        "@request.auth.claims.profile.banned": {}
    route: [{destination: {host: a.svc}}]"""
    snap = snapshot(GATEWAY + virtual_service(rules))
    table = next(iter(snap.route_tables.values()))
    block = table.virtual_hosts[0].routes[0].matches[0]
    assert isinstance(block, RequestMatch)
    assert [n for n, _ in block.headers] == [b"x-env"]
    ((path, matcher),) = block.claims
    assert path == ("groups",) and isinstance(matcher, ExactMatcher)
    assert [p for p, _ in block.without_claims] == [("profile", "banned")]
    req = RequestHead(b"GET", b"/", b"", b"h", b"http", 80, [(b"x-env", b"prod")])

    def auth(**claims: object) -> RequestAuth:
        return RequestAuth("iss", "sub", claims)

    assert not block.matches(req)  # no token: a claim match never holds
    assert block.matches(req, auth(groups=["dev", "admins"]))
    assert block.matches(req, auth(groups="admins"))
    assert not block.matches(req, auth(groups=["dev"]))
    assert not block.matches(req, auth(groups=7))
    assert not block.matches(req, auth(groups=["admins"], profile={"banned": True}))
    assert block.describe()["claims"] == {"groups": "exact:admins"}
    assert table.route_entry(req, auth(groups="admins"))[0] is not None
    assert table.route_entry(req)[0] is None
