"""Tests: RequestAuthentication loads (security.istio.io v1 and v1beta1) and is validated with
file/doc/field diagnostics; claim keys in VirtualService matches are checked."""

from __future__ import annotations

import json

import pytest

from gateway_core.config.loader import load_text
from tests.gateway_core.config.validation.validation_testkit import (
    ERROR,
    WARNING,
    assert_diagnostics,
    doc,
    join,
    validate_text,
    vs,
)
from tests.gateway_core.security.jwt_kit import KeyPair, jwks

GW = doc(
    "Gateway",
    "servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]",
    name="gw",
)


def ra(spec: str, api: str = "security.istio.io/v1") -> str:
    return doc("RequestAuthentication", spec, name="jwt", api=api)


@pytest.mark.parametrize("api", ["security.istio.io/v1", "security.istio.io/v1beta1"])
def test_both_versions_load(api: str) -> None:
    text = ra("jwtRules: [{issuer: a, jwksUri: 'https://idp.example/jwks'}]", api)
    loaded = load_text(text)
    assert [d.message for d in loaded.diagnostics] == []
    assert [r.kind for r in loaded.resources.extensions] == ["RequestAuthentication"]


def test_unknown_fields_and_versions_are_reported_with_their_place() -> None:
    text = join(
        ra("jwtRules: [{issuer: a, jwksUri: 'https://x/j', fromHeader: [{name: x}]}]"),
        ra("jwtRules: []", api="security.istio.io/v1alpha1"),
    )
    loaded = load_text(text, name="ra.yaml")
    assert [str(d) for d in loaded.diagnostics.errors] == [
        "ra.yaml:0: RequestAuthentication/default/jwt: spec.jwtRules[0].fromHeader: unknown field",
        "ra.yaml:1: RequestAuthentication/default/jwt: apiVersion: unsupported apiVersion "
        "'security.istio.io/v1alpha1' (use security.istio.io/v1 or v1beta1)",
    ]


def test_rule_values() -> None:
    bad_jwks = json.dumps({"keys": [{"kty": "oct", "k": "AA"}]})
    spec = f"""
    jwtRules:
    - {{issuer: '', jwksUri: 'ftp://idp/jwks'}}
    - {{issuer: b, audiences: [''], jwksUri: 'https:///nohost'}}
    - {{issuer: c}}
    - {{issuer: d, jwks: '{bad_jwks}'}}
    - {{issuer: e, jwks: 'not json'}}
    - issuer: f
      jwksUri: 'http://idp:99999/j'
      fromHeaders: [{{name: ''}}, {{name: 'bad header'}}]
      fromParams: ['']
      fromCookies: ['']
      outputPayloadToHeader: ':path'
      outputClaimToHeaders: [{{header: x-a}}, {{header: 'x b', claim: sub}}]
      timeout: 0s
    - {{issuer: g, jwksUri: 'https://idp/j', jwks: '{jwks(KeyPair.make("EC", "e"))}'}}
    """
    assert_diagnostics(
        validate_text(ra(spec)),
        [
            (ERROR, "spec.jwtRules[0].issuer", "issuer must be set"),
            (ERROR, "spec.jwtRules[0].jwksUri", "the scheme must be http or https"),
            (ERROR, "spec.jwtRules[1].audiences[0]", "audience must be non-empty string"),
            (ERROR, "spec.jwtRules[1].jwksUri", "a host is required"),
            (ERROR, "spec.jwtRules[2]", "jwksUri or jwks is required"),
            (ERROR, "spec.jwtRules[3].jwks", "no usable key"),
            (ERROR, "spec.jwtRules[4].jwks", "not valid JSON"),
            (ERROR, "spec.jwtRules[5].jwksUri", "invalid jwksUri"),
            (ERROR, "spec.jwtRules[5].fromHeaders[0].name", "must be non-empty"),
            (ERROR, "spec.jwtRules[5].fromHeaders[1].name", "not a valid header name"),
            (ERROR, "spec.jwtRules[5].fromParams[0]", "location query must be non-empty"),
            (ERROR, "spec.jwtRules[5].fromCookies[0]", "cookie name must be non-empty"),
            (ERROR, "spec.jwtRules[5].outputPayloadToHeader", "pseudo-header"),
            (ERROR, "spec.jwtRules[5].outputClaimToHeaders[0]", "must be non-empty"),
            (ERROR, "spec.jwtRules[5].outputClaimToHeaders[1].header", "not a valid header"),
            (ERROR, "spec.jwtRules[5].timeout", "greater than 0"),
            (WARNING, "spec.jwtRules[6].jwksUri", "jwks is used"),
        ],
    )


def test_selector_and_target_refs() -> None:
    text = join(
        GW,
        ra(
            """
            selector: {matchLabels: {'': x, app: 'a*'}}
            targetRef: {kind: Service, group: core, name: ''}
            targetRefs: [{kind: Gateway, name: missing}]
            jwtRules: [{issuer: a, jwksUri: 'https://idp/j'}, {issuer: a, jwksUri: 'https://idp/k'}]
            """
        ),
        doc(
            "RequestAuthentication",
            "targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n"
            "jwtRules: [{issuer: a, jwksUri: 'https://idp/j'}]",
            name="ok",
            api="security.istio.io/v1",
        ),
    )
    assert_diagnostics(
        validate_text(text),
        [
            (ERROR, "spec", "only one of targetRef or targetRefs"),
            (ERROR, "spec", "only one of targetRefs or workloadSelector"),
            (ERROR, "spec.selector.matchLabels.", "empty key"),
            (ERROR, "spec.selector.matchLabels.app", "wildcard is not supported"),
            (ERROR, "spec.targetRef.kind", "kind Service is not supported"),
            (ERROR, "spec.targetRef.group", "group core is not supported"),
            (ERROR, "spec.targetRef.name", "name must be set"),
            (WARNING, "spec.targetRefs[0].name", "no Gateway default/missing"),
            (WARNING, "spec.jwtRules", "issuer a has several rules"),
        ],
    )


def test_claim_keys_in_route_matches() -> None:
    text = vs(
        "{match: [{headers: {'@request.auth.claims.groups': {exact: admins}}}], "
        "route: [{destination: {host: a}}]}",
        "{match: [{headers: {'@request.auth.claims.': {exact: x}}}], "
        "route: [{destination: {host: a}}]}",
        "{match: [{withoutHeaders: {'@request.auth.claims.a..b': {exact: x}}}], "
        "route: [{destination: {host: a}}]}",
        "{match: [{headers: {'@request.auth.claims.profile.tier': {regex: '(gold'}}}], "
        "route: [{destination: {host: a}}]}",
    )
    diags = validate_text(text)
    paths = [(d.severity.value, d.path) for d in diags.errors]
    assert paths == [
        (ERROR, "spec.http[1].match[0].headers.@request.auth.claims."),
        (ERROR, "spec.http[2].match[0].withoutHeaders.@request.auth.claims.a..b"),
        (ERROR, "spec.http[3].match[0].headers.@request.auth.claims.profile.tier.regex"),
    ]
