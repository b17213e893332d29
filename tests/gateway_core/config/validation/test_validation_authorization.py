"""AuthorizationPolicy validation: structure (loader) and meaning, with file/doc/field paths."""

from __future__ import annotations

import pytest
from validation_testkit import (
    ERROR,
    Expected,
    assert_diagnostics,
    doc,
    validate_text,
)

from gateway_core.config.loader import load_text

API = "security.istio.io/v1"


def policy(spec: str, *, api: str = API) -> str:
    return doc("AuthorizationPolicy", spec, name="p", namespace="istio-system", api=api)


@pytest.mark.parametrize("api", ["security.istio.io/v1", "security.istio.io/v1beta1"])
def test_both_api_versions_load(api: str) -> None:
    loaded = load_text(policy("action: DENY\nrules: [{}]", api=api))
    assert not loaded.diagnostics.errors
    (res,) = loaded.resources.authorization_policies
    assert res.ref == "AuthorizationPolicy/istio-system/p"


def test_structural_errors_carry_file_document_ref_and_path() -> None:
    text = policy(
        "action: PERMIT\nrules:\n- from: [{source: {principal: [a]}}]\n"
        "  to: [{operation: {paths: x}}]"
    )
    loaded = load_text("---\n" + text, name="ap.yaml")
    rendered = sorted(str(d) for d in loaded.diagnostics.errors)
    ref = "ap.yaml:0: AuthorizationPolicy/istio-system/p"
    assert rendered[0].startswith(f"{ref}: spec.action: Input should be 'ALLOW'")
    assert f"{ref}: spec.rules[0].from[0].source.principal: unknown field" in rendered
    assert f"{ref}: spec.rules[0].to[0].operation.paths: Input should be a valid list" in rendered
    assert len(rendered) == 3


def test_unsupported_api_version() -> None:
    loaded = load_text(policy("{}", api="security.istio.io/v1alpha1"))
    (err,) = loaded.diagnostics.errors
    assert err.path == "apiVersion" and "security.istio.io/v1 or v1beta1" in err.message


CASES: list[tuple[str, str, list[Expected]]] = [
    ("empty policy is valid", "{}", []),
    ("allow-all rule", "rules: [{}]", []),
    (
        "custom",
        "action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{}]",
        [(ERROR, "spec.action", "CUSTOM (external authorization")],
    ),
    (
        "provider without custom",
        "action: ALLOW\nprovider: {name: x}",
        [(ERROR, "spec.provider", "only be set with action CUSTOM")],
    ),
    (
        "selector and targetRef",
        "selector: {matchLabels: {a: b}}\ntargetRef: {kind: Gateway, name: gw}",
        [(ERROR, "spec", "only one of selector, targetRef or targetRefs")],
    ),
    (
        "targetRef needs kind and name",
        "targetRefs: [{group: gateway.networking.k8s.io}]",
        [
            (ERROR, "spec.targetRefs[0].kind", "kind is required"),
            (ERROR, "spec.targetRefs[0].name", "name is required"),
        ],
    ),
    (
        "empty from and to",
        "rules:\n- from: []\n  to: []",
        [
            (ERROR, "spec.rules[0].from", "`from` must not be empty"),
            (ERROR, "spec.rules[0].to", "`to` must not be empty"),
        ],
    ),
    (
        "nil and empty source and operation",
        "rules:\n- from: [{}, {source: {}}, {source: {principals: []}}]\n"
        "  to: [{}, {operation: {}}]",
        [
            (ERROR, "spec.rules[0].from[0].source", "must not be nil"),
            (ERROR, "spec.rules[0].from[1].source", "must not be empty"),
            (ERROR, "spec.rules[0].from[2].source", "must not be empty"),
            (ERROR, "spec.rules[0].to[0].operation", "must not be nil"),
            (ERROR, "spec.rules[0].to[1].operation", "must not be empty"),
        ],
    ),
    (
        "bad CIDRs and ports",
        "rules:\n- from: [{source: {ipBlocks: ['10.0.0.0/33'], notRemoteIpBlocks: [nope]}}]\n"
        "  to: [{operation: {ports: ['http', '70000'], notPorts: ['80']}}]",
        [
            (ERROR, "spec.rules[0].from[0].source.ipBlocks[0]", "10.0.0.0/33 is not a valid CIDR"),
            (ERROR, "spec.rules[0].from[0].source.notRemoteIpBlocks[0]", "nope is not a valid IP"),
            (ERROR, "spec.rules[0].to[0].operation.ports[0]", 'invalid port "http"'),
            (ERROR, "spec.rules[0].to[0].operation.ports[1]", 'invalid port "70000"'),
        ],
    ),
    (
        "empty values and path templates",
        "rules:\n- to: [{operation: {methods: [''], paths: ['/api/{*}/x'], notPaths: ['/{**}']}}]",
        [
            (ERROR, "spec.rules[0].to[0].operation.methods[0]", "empty value not allowed"),
            (ERROR, "spec.rules[0].to[0].operation.paths[0]", "path template"),
            (ERROR, "spec.rules[0].to[0].operation.notPaths[0]", "path template"),
        ],
    ),
    (
        "when keys",
        "rules:\n- when:\n"
        "  - {key: 'request.auth.claims[groups]', values: [a]}\n"
        "  - {key: 'request.auth.claims[a][b]', notValues: [a]}\n"
        "  - {key: 'request.headers[x-a]', values: ['*']}\n"
        "  - {key: request.regex, values: [a]}\n"
        "  - {key: request.headers, values: [a]}\n"
        "  - {key: 'request.auth.claims[]', values: [a]}\n"
        "  - {values: [a]}\n"
        "  - {key: source.ip}\n"
        "  - {key: remote.ip, values: ['300.1.1.1']}\n"
        "  - {key: destination.port, notValues: ['x']}\n"
        "  - {key: 'experimental.envoy.filters.a[b]', values: [a]}",
        [
            (ERROR, "spec.rules[0].when[3].key", "unknown attribute 'request.regex'"),
            (ERROR, "spec.rules[0].when[4].key", "use request.headers[<name>]"),
            (ERROR, "spec.rules[0].when[5].key", "use request.headers[<name>]"),
            (ERROR, "spec.rules[0].when[6].key", "`key` must not be empty"),
            (ERROR, "spec.rules[0].when[7]", "at least one of `values` or `notValues`"),
            (ERROR, "spec.rules[0].when[8].values[0]", "300.1.1.1 is not a valid IP"),
            (ERROR, "spec.rules[0].when[9].notValues[0]", 'invalid port "x"'),
            (ERROR, "spec.rules[0].when[10].key", "experimental Envoy filter metadata"),
        ],
    ),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_semantic_checks(spec: str, expected: list[Expected]) -> None:
    assert_diagnostics(validate_text(policy(spec)), expected)
