"""Tests: the AuthorizationPolicy engine, compiled from YAML, against Istio's semantics.

Every source and operation field and its ``not…`` form, every ``when`` key, Istio's
exact/prefix/suffix/presence values, the AND/OR structure of rules, empty policies and rules,
and the DENY → ALLOW order with AUDIT on the side.
"""

from __future__ import annotations

import pytest

from gateway_core.security.authz import namespace_of
from tests.gateway_core.security.authz_testkit import (
    allowed,
    engine,
    engine_of,
    facts,
    policy,
    token,
)


def allow(rules: str, **kw: str) -> str:
    return policy(f"action: ALLOW\nrules:\n{rules}", **kw)


def deny(rules: str, **kw: str) -> str:
    return policy(f"action: DENY\nrules:\n{rules}", **kw)


# -- values: exact, prefix, suffix, presence --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "matches"),
    [
        ("/api", "/api", True),
        ("/api", "/api/", False),
        ("/api*", "/api/v1", True),
        ("/api*", "/ap", False),
        ("*.json", "/a/b.json", True),
        ("*.json", "/a/b.jsonx", False),
        ("*", "/anything", True),
        ("/a*b", "/a*b", True),  # a * inside the value is literal
        ("/a*b", "/axb", False),
    ],
)
def test_path_values(value: str, path: str, matches: bool) -> None:
    eng = engine(allow(f'- to: [{{operation: {{paths: ["{value}"]}}}}]'))
    assert allowed(eng, path=path) is matches


def test_hosts_compare_ignoring_case_and_keep_the_port() -> None:
    eng = engine(allow("- to: [{operation: {hosts: [Example.COM, '*.Foo.org', 'api.*']}}]"))
    assert allowed(eng, host="example.com")
    assert allowed(eng, host="www.foo.org")
    assert allowed(eng, host="api.anything:8080")
    # Istio matches the Host header as sent: with a port, an exact host no longer matches.
    assert not allowed(eng, host="example.com:8080")
    assert not allowed(eng, host="other.com")


def test_methods_are_case_sensitive_and_ports_exact() -> None:
    eng = engine(allow("- to: [{operation: {methods: [GET, 'P*'], ports: ['8080', '80']}}]"))
    assert allowed(eng, method="GET", port=80)
    assert allowed(eng, method="PUT", port=8080)
    assert not allowed(eng, method="get", port=80)
    assert not allowed(eng, method="DELETE", port=80)
    assert not allowed(eng, method="GET", port=8081)


def test_not_forms_of_operation() -> None:
    eng = engine(
        allow(
            "- to: [{operation: {notHosts: [admin.example.com], notPorts: ['9000'],"
            " notMethods: [DELETE], notPaths: ['/admin*']}}]"
        )
    )
    assert allowed(eng)
    assert not allowed(eng, host="admin.example.com")
    assert not allowed(eng, port=9000)
    assert not allowed(eng, method="DELETE")
    assert not allowed(eng, path="/admin/x")


def test_field_and_not_field_together() -> None:
    eng = engine(allow("- to: [{operation: {paths: ['/api/*'], notPaths: ['/api/private*']}}]"))
    assert allowed(eng, path="/api/public")
    assert not allowed(eng, path="/api/private/x")
    assert not allowed(eng, path="/other")


# -- sources -----------------------------------------------------------------------------------


def test_ip_blocks_read_the_peer_and_remote_ip_blocks_the_forwarded_client() -> None:
    eng = engine(
        allow("- from: [{source: {ipBlocks: ['10.0.0.0/8'], remoteIpBlocks: ['1.2.3.4']}}]")
    )
    assert allowed(eng, source_ip="10.9.9.9", remote_ip="1.2.3.4")
    assert not allowed(eng, source_ip="10.9.9.9", remote_ip="1.2.3.5")
    assert not allowed(eng, source_ip="192.168.0.1", remote_ip="1.2.3.4")


def test_not_ip_blocks_and_ipv6() -> None:
    eng = engine(
        allow(
            "- from: [{source: {notIpBlocks: ['10.1.0.0/16'],"
            " notRemoteIpBlocks: ['2001:db8::/32']}}]"
        )
    )
    assert allowed(eng, source_ip="10.2.0.1", remote_ip="2001:db9::1")
    assert not allowed(eng, source_ip="10.1.2.3")
    assert not allowed(eng, remote_ip="2001:db8::7")


def test_request_principals_prefix_suffix_presence_and_not() -> None:
    eng = engine(allow("- from: [{source: {requestPrincipals: ['issuer/alice', 'corp/*']}}]"))
    assert allowed(eng, auth=token("issuer", "alice"))
    assert allowed(eng, auth=token("corp", "bob"))
    assert not allowed(eng, auth=token("issuer", "bob"))
    assert not allowed(eng)  # no token, no principal
    present = engine(allow("- from: [{source: {requestPrincipals: ['*']}}]"))
    assert allowed(present, auth=token())
    assert not allowed(present)
    suffix = engine(allow("- from: [{source: {requestPrincipals: ['*/alice']}}]"))
    assert allowed(suffix, auth=token("x", "alice"))
    missing = engine(deny("- from: [{source: {notRequestPrincipals: ['*']}}]"))
    assert not allowed(missing)
    assert allowed(missing, auth=token())


def test_principals_and_namespaces_come_from_the_client_certificate() -> None:
    eng = engine(
        allow(
            "- from: [{source: {principals: ['cluster.local/ns/shop/sa/*'],"
            " namespaces: [shop], notNamespaces: [test]}}]"
        )
    )
    assert allowed(eng, peer_principal="cluster.local/ns/shop/sa/web")
    assert not allowed(eng, peer_principal="cluster.local/ns/test/sa/web")
    # Without a verified SPIFFE certificate there is no principal: nothing matches it.
    assert not allowed(eng)
    not_principal = engine(allow("- from: [{source: {notPrincipals: ['*']}}]"))
    assert allowed(not_principal)
    assert not allowed(not_principal, peer_principal="td/ns/a/sa/b")


def test_namespace_of_a_principal() -> None:
    assert namespace_of("cluster.local/ns/foo/sa/bar") == "foo"
    assert namespace_of("td/other/ns/x/sa/y") == "x"
    assert namespace_of("cluster.local/sa/bar") is None
    assert namespace_of(None) is None


# -- when ----------------------------------------------------------------------------------------


def test_when_claims_nested_and_lists() -> None:
    eng = engine(
        allow(
            "- when:\n"
            "  - {key: 'request.auth.claims[groups]', values: [admins]}\n"
            "  - {key: 'request.auth.claims[realm][role]', values: ['ops*']}\n"
            "  - {key: 'request.auth.claims[env]', notValues: [test]}"
        )
    )
    good = token(groups=["dev", "admins"], realm={"role": "ops-lead"}, env="prod")
    assert allowed(eng, auth=good)
    assert not allowed(eng, auth=token(groups="devs", realm={"role": "ops-lead"}))
    assert not allowed(eng, auth=token(groups=["admins"], realm={"role": "dev"}))
    assert not allowed(eng, auth=token(groups=["admins"], realm={"role": "ops"}, env="test"))
    assert not allowed(eng)  # no token: no claims
    # Non-string claims never match a string value (as Envoy's string matchers).
    flag = engine(allow("- when: [{key: 'request.auth.claims[admin]', values: ['true']}]"))
    assert not allowed(flag, auth=token(admin=True))
    assert allowed(flag, auth=token(admin="true"))


def test_when_auth_principal_audiences_presenter() -> None:
    eng = engine(
        allow(
            "- when:\n"
            "  - {key: request.auth.principal, values: ['issuer/*']}\n"
            "  - {key: request.auth.audiences, values: [api]}\n"
            "  - {key: request.auth.presenter, notValues: [evil-app]}"
        )
    )
    assert allowed(eng, auth=token(aud=["web", "api"], azp="good-app"))
    assert not allowed(eng, auth=token(aud="web"))
    assert not allowed(eng, auth=token(aud="api", azp="evil-app"))
    assert not allowed(eng, auth=token(iss="other", aud="api"))


def test_when_headers_ips_port_sni_and_source() -> None:
    eng = engine(
        allow(
            "- when:\n"
            "  - {key: 'request.headers[X-Tenant]', values: [acme]}\n"
            "  - {key: source.ip, values: ['10.0.0.0/24']}\n"
            "  - {key: remote.ip, notValues: ['6.6.6.6']}\n"
            "  - {key: destination.port, values: ['443']}\n"
            "  - {key: connection.sni, values: ['*.example.com']}\n"
            "  - {key: destination.ip, values: ['10.0.0.2']}"
        )
    )
    ok = {
        "headers": {"x-tenant": "acme"},
        "port": 443,
        "sni": "api.example.com",
        "remote_ip": "5.5.5.5",
    }
    assert allowed(eng, **ok)
    assert not allowed(eng, **{**ok, "headers": {"x-tenant": "other"}})
    assert not allowed(eng, **{**ok, "headers": {}})
    assert not allowed(eng, **{**ok, "source_ip": "10.0.1.1"})
    assert not allowed(eng, **{**ok, "remote_ip": "6.6.6.6"})
    assert not allowed(eng, **{**ok, "port": 80})
    assert not allowed(eng, **{**ok, "sni": None})
    header_present = engine(allow("- when: [{key: 'request.headers[x-debug]', values: ['*']}]"))
    assert allowed(header_present, headers={"x-debug": "1"})
    assert not allowed(header_present)


def test_when_source_principal_and_namespace() -> None:
    eng = engine(
        allow(
            "- when:\n"
            "  - {key: source.principal, values: ['*/sa/web']}\n"
            "  - {key: source.namespace, values: [shop]}"
        )
    )
    assert allowed(eng, peer_principal="cluster.local/ns/shop/sa/web")
    assert not allowed(eng, peer_principal="cluster.local/ns/dev/sa/web")
    assert not allowed(eng)


# -- rule structure --------------------------------------------------------------------------------


def test_from_to_when_are_anded_entries_ored_fields_anded() -> None:
    eng = engine(
        allow(
            "- from:\n"
            "  - source: {ipBlocks: ['10.0.0.0/8'], remoteIpBlocks: ['1.1.1.1']}\n"
            "  - source: {ipBlocks: ['192.168.0.0/16']}\n"
            "  to:\n"
            "  - operation: {methods: [GET], paths: ['/read*']}\n"
            "  - operation: {methods: [POST], paths: ['/write']}\n"
            "  when:\n"
            "  - {key: 'request.headers[x-ok]', values: ['1']}"
        )
    )
    ok = {"headers": {"x-ok": "1"}}
    # first source (both fields) or second source; first or second operation; and when.
    assert allowed(eng, source_ip="10.1.1.1", remote_ip="1.1.1.1", path="/read/x", **ok)
    assert allowed(eng, source_ip="192.168.1.1", method="POST", path="/write", **ok)
    assert not allowed(eng, source_ip="10.1.1.1", remote_ip="2.2.2.2", path="/read", **ok)
    assert not allowed(eng, source_ip="192.168.1.1", method="POST", path="/read", **ok)
    assert not allowed(eng, source_ip="192.168.1.1", path="/read")  # when fails


def test_rules_are_ored_and_the_first_matching_rule_decides() -> None:
    eng = engine(
        allow("- to: [{operation: {paths: ['/a']}}]\n- to: [{operation: {paths: ['/b']}}]")
    )
    decision = eng.decide(facts(path="/b"))
    assert decision.allowed and decision.policy == "istio-system/p" and decision.rule == 1
    assert not allowed(eng, path="/c")


# -- empty policies and rules, and the evaluation order -------------------------------------


def test_allow_with_no_rules_denies_everything() -> None:
    eng = engine(policy(""))  # spec: {} → action ALLOW without rules
    decision = eng.decide(facts())
    assert not decision.allowed and decision.policy is None
    assert "none matched" in decision.describe()


def test_allow_with_an_empty_rule_allows_everything() -> None:
    eng = engine(policy("action: ALLOW\nrules: [{}]"))
    assert allowed(eng, path="/anything", method="DELETE")


def test_deny_with_no_rules_never_matches_and_deny_with_an_empty_rule_denies_all() -> None:
    assert allowed(engine(policy("action: DENY")))
    assert not allowed(engine(policy("action: DENY\nrules: [{}]")))


def test_deny_wins_over_allow() -> None:
    eng = engine(
        policy("action: ALLOW\nrules: [{}]", name="all"),
        deny("- to: [{operation: {paths: ['/admin*']}}]", name="no-admin"),
    )
    assert allowed(eng, path="/x")
    decision = eng.decide(facts(path="/admin/x"))
    assert not decision.allowed and decision.policy == "istio-system/no-admin"


def test_only_deny_policies_allow_what_they_do_not_match() -> None:
    eng = engine(deny("- to: [{operation: {methods: [DELETE]}}]"))
    decision = eng.decide(facts())
    assert decision.allowed and decision.policy is None
    assert not allowed(eng, method="DELETE")


def test_several_allow_policies_any_one_allows() -> None:
    eng = engine(
        allow("- to: [{operation: {paths: ['/a']}}]", name="a"),
        allow("- to: [{operation: {paths: ['/b']}}]", name="b"),
    )
    assert eng.decide(facts(path="/b")).policy == "istio-system/b"
    assert not allowed(eng, path="/c")


def test_audit_never_changes_the_outcome() -> None:
    audit = policy("action: AUDIT\nrules: [{to: [{operation: {paths: ['/x']}}]}]", name="audit")
    only_audit = engine(audit)
    decision = only_audit.decide(facts(path="/x"))
    assert decision.allowed and decision.audited == (("istio-system/audit", 0),)
    assert only_audit.decide(facts(path="/y")).audited == ()
    # An AUDIT policy is not an ALLOW policy: it does not make unmatched requests denied.
    with_deny = engine(audit, policy("action: DENY\nrules: [{}]", name="d"))
    denied = with_deny.decide(facts(path="/x"))
    assert not denied.allowed and denied.audited == (("istio-system/audit", 0),)


def test_unauthenticated_marks_denials_of_tokenless_requests_by_auth_policies() -> None:
    require = engine(deny("- from: [{source: {notRequestPrincipals: ['*']}}]"))
    assert require.decide(facts()).unauthenticated
    by_path = engine(deny("- to: [{operation: {paths: ['/x']}}]"))
    assert not by_path.decide(facts(path="/x")).unauthenticated
    allow_jwt = engine(allow("- from: [{source: {requestPrincipals: ['*']}}]"))
    assert allow_jwt.decide(facts()).unauthenticated
    # With a token that does not match, the denial is not "unauthenticated".
    alice_only = engine(allow("- from: [{source: {requestPrincipals: [issuer/alice]}}]"))
    bob = alice_only.decide(facts(auth=token(sub="bob")))
    assert not bob.allowed and not bob.unauthenticated
    assert (
        not engine(allow("- when: [{key: request.auth.audiences, values: [x]}]"))
        .decide(facts(auth=token(aud="y")))
        .unauthenticated
    )


# -- which policies apply ----------------------------------------------------------------------


def test_selector_must_match_the_gateway_labels() -> None:
    selected = policy("selector: {matchLabels: {istio: ingressgateway}}\naction: DENY\nrules: [{}]")
    assert engine_of(selected, labels={"istio": "ingressgateway", "x": "y"}) is not None
    assert engine_of(selected, labels={"istio": "egressgateway"}) is None
    assert engine_of(selected, labels={}) is None
    # No policy at all: nothing in the gateway-wide chain.
    assert engine_of() is None


def test_target_ref_naming_this_gateway_applies_others_do_not() -> None:
    named = policy(
        "targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}\n"
        "action: DENY\nrules: [{}]"
    )
    assert engine_of(named) is not None
    refs = policy(
        "targetRefs:\n- {kind: Service, name: gw}\n- {kind: Gateway, name: other}\n"
        "action: DENY\nrules: [{}]"
    )
    assert engine_of(refs) is None
