"""Tests: a compiled snapshot survives the supervisor → worker channel (``pack_snapshot``,
``unpack_snapshot``) with every kind of object a configuration compiles to: route matchers
(exact, prefix, RE2 regex, present), regex rewrites, JWT claim matches, inline JWT keys of every
type, AuthorizationPolicy ``when`` getters over headers and claims, and local rate limits. The
copy must dump the same and decide the same; the suite runs compiled (mypyc) and pure."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from gateway_core.routing.ratelimit import RateLimitSpec
from gateway_core.routing.request import RequestHead
from gateway_core.security.authn import JwtAuthnSpec
from gateway_core.security.authz import AccessFacts, AuthorizationFilter
from gateway_core.security.jwt_token import JwtFailure, parse_jwt, verify_signature
from gateway_core.security.principal import RequestAuth
from gateway_core.server.channel import pack_snapshot, unpack_snapshot
from gateway_core.server.dump import snapshot_dump
from gateway_core.snapshot import Snapshot
from tests.gateway_core.compiler.compiler_testkit import GATEWAY, snapshot, virtual_service
from tests.gateway_core.security.jwt_kit import ISSUER, KeyPair, jwks

PAIRS = (KeyPair.make("RSA", "r1"), KeyPair.make("EC", "e1"), KeyPair.make("OKP", "o1"))

ROUTES = """\
  - name: regex
    match:
    - uri: {regex: '/r/[0-9]+'}
      headers: {x-env: {exact: prod}}
    rewrite: {uriRegexRewrite: {match: '^/r/([0-9]+)', rewrite: '/num/\\1'}}
    route: [{destination: {host: a.svc}}]
  - name: claims
    match:
    - headers:
        "@request.auth.claims.groups": {exact: admins}
      uri: {prefix: /admin}
    route: [{destination: {host: a.svc}}]
  - name: present
    match:
    - headers: {x-debug: {}}
      queryParams: {v: {exact: '1'}}
    route: [{destination: {host: a.svc}}]
  - name: rest
    route: [{destination: {host: a.svc}}]
"""

SECURITY = f"""---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: istio-system}}
spec:
  jwtRules: [{{issuer: {ISSUER}, jwks: '{jwks(*PAIRS)}'}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny, namespace: istio-system}}
spec:
  action: DENY
  rules:
  - when:
    - {{key: 'request.headers[x-block]', values: ['yes']}}
  - when:
    - {{key: 'request.auth.claims[profile][tier]', values: ['banned']}}
"""

RATE_LIMITS = """---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: LocalRateLimit
metadata: {name: per-client}
spec:
  tokenBucket: {maxTokens: 2, tokensPerFill: 1, fillInterval: 1s}
  descriptor: {requestHeader: {name: x-api-key}}
---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: LocalRateLimit
metadata: {name: per-route}
spec:
  virtualService: vs
  route: rest
  tokenBucket: {maxTokens: 5, fillInterval: 100ms}
  descriptor: {claim: {name: org.id}}
"""


def _rich() -> Snapshot:
    return snapshot(GATEWAY + virtual_service(ROUTES) + SECURITY)


def _requests() -> list[tuple[RequestHead, RequestAuth | None]]:
    def head(path: bytes, query: bytes = b"", **headers: bytes) -> RequestHead:
        items = [(k.replace("_", "-").encode(), v) for k, v in headers.items()]
        return RequestHead(b"GET", path, query, b"h", b"http", 80, items)

    admin = RequestAuth(ISSUER, "u", {"groups": ["dev", "admins"]})
    return [
        (head(b"/r/12", x_env=b"prod"), None),
        (head(b"/r/12", x_env=b"dev"), None),
        (head(b"/r/x1", x_env=b"prod"), None),
        (head(b"/admin/a"), admin),
        (head(b"/admin/a"), None),
        (head(b"/p", b"v=1", x_debug=b""), None),
        (head(b"/p", b"v=2", x_debug=b""), None),
    ]


def _routes(snap: Snapshot) -> list[tuple[str | None, bytes | None]]:
    table = next(iter(snap.route_tables.values()))
    out: list[tuple[str | None, bytes | None]] = []
    for req, auth in _requests():
        entry = table.route_entry(req, auth)[0]
        rewritten = None
        if entry is not None and entry.rewrite is not None and entry.rewrite.regex is not None:
            rewritten = entry.rewrite.regex.apply(req.path)
        out.append((entry.name if entry is not None else None, rewritten))
    return out


def _filters(snap: Snapshot) -> tuple[JwtAuthnSpec, AuthorizationFilter]:
    (authn,) = [f for f in snap.gateway_filters if isinstance(f, JwtAuthnSpec)]
    (authz,) = [f for f in snap.gateway_filters if isinstance(f, AuthorizationFilter)]
    return authn, authz


def test_a_compiled_snapshot_dumps_and_routes_the_same_after_the_channel() -> None:
    original = _rich()
    copy = unpack_snapshot(pack_snapshot(original))
    assert copy is not original and copy.version == original.version
    assert snapshot_dump(copy) == snapshot_dump(original)
    routes = _routes(copy)
    assert routes == _routes(original)
    # the expected decisions, so that "the same" cannot mean "both broken"
    assert [name for name, _ in routes] == [
        "default/vs/http[0].regex",
        "default/vs/http[3].rest",
        "default/vs/http[3].rest",
        "default/vs/http[1].claims",
        "default/vs/http[3].rest",
        "default/vs/http[2].present",
        "default/vs/http[3].rest",
    ]
    assert routes[0][1] == b"/num/12"


def test_inline_jwt_keys_verify_after_the_channel() -> None:
    authn, _ = _filters(unpack_snapshot(pack_snapshot(_rich())))
    (rule,) = authn.rules
    assert rule.inline_keys is not None
    assert sorted(k.kid for k in rule.inline_keys.keys) == ["e1", "o1", "r1"]
    for pair in PAIRS:
        verify_signature(parse_jwt(pair.mint()), rule.inline_keys)  # raises when it fails
    stranger = KeyPair.make("EC", "e1")
    with pytest.raises(JwtFailure, match="Jwt verification fails"):
        verify_signature(parse_jwt(stranger.mint()), rule.inline_keys)


def test_authorization_getters_decide_the_same_after_the_channel() -> None:
    _, before = _filters(_rich())
    _, after = _filters(unpack_snapshot(pack_snapshot(_rich())))

    def facts(headers: dict[bytes, bytes], claims: dict[str, object] | None) -> AccessFacts:
        auth = RequestAuth(ISSUER, "u", claims) if claims is not None else None
        return AccessFacts("GET", "/", "h", headers, 80, "10.0.0.1", "10.0.0.1", auth=auth)

    cases = [
        (facts({b"x-block": b"yes"}, None), False),
        (facts({b"x-block": b"no"}, None), True),
        (facts({}, {"profile": {"tier": "banned"}}), False),
        (facts({}, {"profile": {"tier": "gold"}}), True),
    ]
    for case, allowed in cases:
        assert after.decide(case).allowed is allowed
        assert after.decide(case) == before.decide(case)


def test_local_rate_limits_survive_the_channel() -> None:
    original = snapshot(GATEWAY + virtual_service(ROUTES) + RATE_LIMITS)
    copy = unpack_snapshot(pack_snapshot(original))
    assert snapshot_dump(copy) == snapshot_dump(original)
    limits = [f for f in copy.gateway_filters if isinstance(f, RateLimitSpec)]
    assert limits == [f for f in original.gateway_filters if isinstance(f, RateLimitSpec)]
    (gateway_wide,) = limits
    assert (gateway_wide.name, gateway_wide.header, gateway_wide.max_tokens) == (
        "default/per-client",
        b"x-api-key",
        2,
    )
    assert gateway_wide.key == (
        "default/per-client|2/1/1.0|request_header:x-api-key|10000"
    )  # derived in __post_init__, so built again in the copy


def test_a_route_table_memo_starts_empty_in_the_copy() -> None:
    original = _rich()
    table = next(iter(original.route_tables.values()))
    table.found["h"]  # remember a host
    copy = next(iter(unpack_snapshot(pack_snapshot(original)).route_tables.values()))
    assert len(table.found) == 1 and len(copy.found) == 0
    assert copy.found["h"] is copy.virtual_hosts[0]


def test_what_is_not_a_snapshot_is_refused() -> None:
    with pytest.raises(TypeError, match="expected a Snapshot"):
        unpack_snapshot(pickle.dumps({"version": "x"}))


def test_an_object_that_cannot_be_sent_fails_the_packing() -> None:
    """The supervisor turns this into a rejected rollout ("cannot hand version ... to the
    workers"); no worker sees the version."""
    broken = dataclasses.replace(_rich(), gateway_filters=(lambda: None,))
    with pytest.raises((pickle.PicklingError, AttributeError), match="lambda"):
        pack_snapshot(broken)
