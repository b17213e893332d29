"""Per-resource VirtualService rules: matches, actions, conflicts, hosts (Istio wording)."""

from __future__ import annotations

import json

import pytest
from validation_testkit import ERROR, WARNING, Expected, assert_diagnostics, validate_text, vs

ROUTE = "route: [{destination: {host: httpbin}}]"
R0 = "spec.http[0]"
M0 = "spec.http[0].match[0]"

CASES: list[tuple[str, str, list[Expected]]] = [
    (
        "valid-rule",
        vs(
            "{match: [{uri: {prefix: /api}, headers: {end-user: {exact: jason}}}], "
            f"{ROUTE}, timeout: 1.5s, retries: {{attempts: 3, perTryTimeout: 2s, "
            "retryOn: '5xx,503,reset'}, fault: {delay: {fixedDelay: 7s, percentage: {value: 10}}}}"
        ),
        [],
    ),
    (
        "timeout-below-1ms",
        vs(f"{{{ROUTE}, timeout: 0.0005s}}"),
        [(ERROR, f"{R0}.timeout", "duration must be greater than 1ms")],
    ),
    (
        "timeout-sub-ms-precision",
        vs(f"{{{ROUTE}, timeout: 1.0005s}}"),
        [(ERROR, f"{R0}.timeout", "only durations to ms precision are supported")],
    ),
    (
        "regex-does-not-compile",
        vs(f"{{match: [{{uri: {{regex: '['}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.uri.regex", "invalid regex: missing ]: [; Istio uses RE2")],
    ),
    (
        "regex-lookahead",
        vs(f"{{match: [{{uri: {{regex: '^/a(?=b)'}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.uri.regex", "invalid regex: invalid perl operator: (?=; Istio uses RE2")],
    ),
    (
        "regex-negative-lookbehind-in-header",
        vs(f"{{match: [{{headers: {{x-a: {{regex: '(?<!a)b'}}}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.headers.x-a.regex", "invalid regex: invalid perl operator: (?<!")],
    ),
    (
        "regex-backreference",
        vs(f"{{match: [{{uri: {{regex: '(a)\\1'}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.uri.regex", "invalid regex: invalid escape sequence: \\1")],
    ),
    (
        "regex-too-long",
        vs(f"{{match: [{{uri: {{regex: {'a' * 1025}}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.uri.regex", "regex is too large, max length allowed is 1024")],
    ),
    (
        "regex-empty",
        vs(f"{{match: [{{authority: {{regex: ''}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.authority.regex", "regex string match should not be empty")],
    ),
    (
        "header-prefix-empty",
        vs(f"{{match: [{{headers: {{x-a: {{prefix: ''}}}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.headers.x-a.prefix", "prefix string match should not be empty")],
    ),
    ("uri-prefix-empty-allowed", vs(f"{{match: [{{uri: {{prefix: ''}}}}], {ROUTE}}}"), []),
    (
        "without-headers-star-is-presence",
        vs(f"{{match: [{{withoutHeaders: {{x-a: {{regex: '*'}}}}}}], {ROUTE}}}"),
        [],
    ),
    (
        "header-name-uppercase",
        vs(f"{{match: [{{headers: {{End-User: {{exact: jason}}}}}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.headers.End-User", "header name End-User must be lowercase")],
    ),
    (
        "weight-negative",
        vs(
            "{route: [{destination: {host: a}, weight: -1}, {destination: {host: b}, weight: 101}]}"
        ),
        [(ERROR, f"{R0}.route[0].weight", "weight -1 < 0")],
    ),
    (
        "total-weight-zero",
        vs("{route: [{destination: {host: a}}, {destination: {host: b}, weight: 0}]}"),
        [(ERROR, f"{R0}.route", "total destination weight = 0")],
    ),
    ("single-destination-weight-zero", vs("{route: [{destination: {host: a}, weight: 0}]}"), []),
    (
        "redirect-code-not-3xx",
        vs("{redirect: {uri: /x, redirectCode: 200}}"),
        [(ERROR, f"{R0}.redirect.redirectCode", "200 is not a valid redirect code, must be 3xx")],
    ),
    (
        "redirect-scheme",
        vs("{redirect: {scheme: ftp}}"),
        [(ERROR, f"{R0}.redirect.scheme", 'invalid redirect scheme, must be "http" or "https"')],
    ),
    (
        "redirect-without-target",
        vs("{redirect: {redirectCode: 302}}"),
        [(ERROR, f"{R0}.redirect", "redirect must specify URI, authority, scheme, or port")],
    ),
    (
        "direct-response-status",
        vs("{directResponse: {status: 600}}"),
        [(ERROR, f"{R0}.directResponse.status", "HTTP status 600 is not in range 200-599")],
    ),
    (
        "direct-response-body-over-100kb",
        vs(f"{{directResponse: {{status: 200, body: {{string: {json.dumps('x' * 102401)}}}}}}}"),
        [(WARNING, f"{R0}.directResponse.body", "large direct_responses may impact")],
    ),
    (
        "direct-response-body-over-1mb",
        vs(f"{{directResponse: {{status: 200, body: {{string: {json.dumps('x' * 1048577)}}}}}}}"),
        [(ERROR, f"{R0}.directResponse.body", "must be less than 1MB")],
    ),
    (
        "route-and-redirect",
        vs(f"{{{ROUTE}, redirect: {{uri: /x}}}}"),
        [(ERROR, R0, "HTTP route cannot contain both route and redirect")],
    ),
    (
        "fault-and-redirect",
        vs("{redirect: {uri: /x}, fault: {abort: {httpStatus: 500}}}"),
        [(ERROR, R0, "HTTP route cannot contain both fault and redirect")],
    ),
    (
        "rewrite-and-redirect",
        vs("{redirect: {uri: /x}, rewrite: {uri: /y}}"),
        [(ERROR, R0, "HTTP route rule cannot contain both rewrite and redirect")],
    ),
    (
        "redirect-and-direct-response",
        vs("{redirect: {uri: /x}, directResponse: {status: 200}}"),
        [(ERROR, R0, "HTTP route rule cannot contain both direct_response and redirect")],
    ),
    (
        "direct-response-with-route-fault-rewrite",
        vs(
            f"{{{ROUTE}, directResponse: {{status: 200}}, rewrite: {{uri: /y}}, "
            "fault: {abort: {httpStatus: 500}}}"
        ),
        [
            (ERROR, R0, "HTTP route cannot contain both route and direct_response"),
            (ERROR, R0, "HTTP route cannot contain both fault and direct_response"),
            (ERROR, R0, "HTTP route rule cannot contain both rewrite and direct_response"),
        ],
    ),
    (
        "mirror-and-mirrors",
        vs(f"{{{ROUTE}, mirror: {{host: m}}, mirrors: [{{destination: {{host: n}}}}]}}"),
        [(ERROR, R0, "HTTP route cannot contain both mirror and mirrors")],
    ),
    (
        "no-action",
        vs("{match: [{uri: {prefix: /}}]}"),
        [(ERROR, R0, "HTTP route, redirect or direct_response is required")],
    ),
    (
        "rewrite-uri-and-regex-rewrite",
        vs(f"{{{ROUTE}, rewrite: {{uri: /a, uriRegexRewrite: {{match: ^/b, rewrite: /c}}}}}}"),
        [(ERROR, f"{R0}.rewrite", "rewrite may only contain one of URI or UriRegexRewrite")],
    ),
    (
        "regex-rewrite-lookahead",
        vs(f"{{{ROUTE}, rewrite: {{uriRegexRewrite: {{match: '(?=x)', rewrite: /c}}}}}}"),
        [(ERROR, f"{R0}.rewrite.uriRegexRewrite.match", "invalid perl operator: (?=")],
    ),
    (
        "regex-rewrite-missing-group",
        vs(f"{{{ROUTE}, rewrite: {{uriRegexRewrite: {{match: '^/(a)', rewrite: '/\\2'}}}}}}"),
        [
            (
                ERROR,
                f"{R0}.rewrite.uriRegexRewrite.rewrite",
                "invalid rewrite: Rewrite schema requests 2 matches, but the regexp only has 1",
            )
        ],
    ),
    (
        "rewrite-empty",
        vs(f"{{{ROUTE}, rewrite: {{}}}}"),
        [(ERROR, f"{R0}.rewrite", "rewrite must specify at least one of URI, UriRegexRewrite")],
    ),
    (
        "retries-disabled-but-configured",
        vs(f"{{{ROUTE}, retries: {{attempts: 0, perTryTimeout: 1s}}}}"),
        [(ERROR, f"{R0}.retries", "http retry policy configured when attempts are set to 0")],
    ),
    (
        "retry-on-unknown-policies",
        vs(f"{{{ROUTE}, retries: {{attempts: 2, retryOn: '5xx,bogus,999,418'}}}}"),
        [
            (ERROR, f"{R0}.retries.retryOn", '"bogus" is not a valid retryOn policy'),
            (ERROR, f"{R0}.retries.retryOn", '"999" is not a valid retryOn policy'),
        ],
    ),
    (
        "retry-per-try-timeout",
        vs(f"{{{ROUTE}, retries: {{attempts: 2, perTryTimeout: 0.0001s}}}}"),
        [(ERROR, f"{R0}.retries.perTryTimeout", "duration must be greater than 1ms")],
    ),
    (
        "fault-empty",
        vs(f"{{{ROUTE}, fault: {{}}}}"),
        [(ERROR, f"{R0}.fault", "HTTP fault injection must have an abort and/or a delay")],
    ),
    (
        "fault-exponential-delay",
        vs(f"{{{ROUTE}, fault: {{delay: {{exponentialDelay: 1s}}}}}}"),
        [(ERROR, f"{R0}.fault.delay.exponentialDelay", "exponentialDelay not supported yet")],
    ),
    (
        "fault-http2-error",
        vs(f"{{{ROUTE}, fault: {{abort: {{http2Error: CANCEL}}}}}}"),
        [(ERROR, f"{R0}.fault.abort.http2Error", "HTTP/2 abort fault injection not supported")],
    ),
    (
        "fault-percentage-tiny",
        vs(f"{{{ROUTE}, fault: {{abort: {{httpStatus: 503, percentage: {{value: 0.00001}}}}}}}}"),
        [
            (
                ERROR,
                f"{R0}.fault.abort.percentage.value",
                "percentage 1e-05 is neither 0.0, nor in range [0.0001, 100.0]",
            )
        ],
    ),
    (
        "fault-abort-status",
        vs(f"{{{ROUTE}, fault: {{abort: {{httpStatus: 700}}}}}}"),
        [(ERROR, f"{R0}.fault.abort.httpStatus", "HTTP status 700 is not in range 200-599")],
    ),
    (
        "mirror-percent-deprecated",
        vs(f"{{{ROUTE}, mirror: {{host: m}}, mirrorPercent: 50}}"),
        [(WARNING, f"{R0}.mirrorPercent", 'deprecated setting "mirrorPercent"')],
    ),
    (
        "cors-max-age-fraction",
        vs(f"{{{ROUTE}, corsPolicy: {{maxAge: 1.5s, allowMethods: [GET, FETCH]}}}}"),
        [
            (ERROR, f"{R0}.corsPolicy.maxAge", "accurate only to seconds precision"),
            (ERROR, f"{R0}.corsPolicy.allowMethods[1]", '"FETCH" is not a supported HTTP method'),
        ],
    ),
    (
        "delegate-unsupported",
        vs("{delegate: {name: reviews}}"),
        [(ERROR, f"{R0}.delegate", "delegate is not supported by this gateway")],
    ),
    (
        "tls-and-tcp-routes-ignored",
        vs(ROUTE.join("{}"), extra="tcp: [{route: [{destination: {host: db}}]}]\n"),
        [(WARNING, "spec.tcp", "ignored: this gateway serves HTTP routes only")],
    ),
    (
        "remove-host-header",
        vs(
            f"{{{ROUTE}, headers: {{request: {{remove: [host]}}, response: {{set: {{':x': a}}}}}}}}"
        ),
        [
            (ERROR, f"{R0}.headers.request.remove[0]", 'invalid header "host": cannot set Host'),
            (ERROR, f"{R0}.headers.response.set.:x", 'header cannot have ":" prefix'),
        ],
    ),
    (
        "authority-set-twice",
        vs(f"{{{ROUTE}, rewrite: {{authority: a}}, headers: {{request: {{set: {{host: b}}}}}}}}"),
        [
            (
                ERROR,
                f"{R0}.headers.request.set.host",
                'authority header cannot be set multiple times: have "a", attempting to set "b"',
            )
        ],
    ),
    (
        "header-value-unterminated-variable",
        vs(f"{{{ROUTE}, headers: {{response: {{add: {{x-a: 'abc%123'}}}}}}}}"),
        [(ERROR, f"{R0}.headers.response.add.x-a", "Un-terminated variable expression")],
    ),
    (
        "second-catch-all-rule-unreachable",
        vs(ROUTE.join("{}"), ROUTE.join("{}")),
        [(WARNING, "spec.http[1]", "virtualService rule #1 not used (only the last rule")],
    ),
    (
        "duplicate-match-unreachable",
        vs(
            f"{{match: [{{uri: {{exact: /a}}}}], {ROUTE}}}",
            f"{{name: dup, match: [{{uri: {{exact: /a}}}}], {ROUTE}}}",
        ),
        [
            (WARNING, "spec.http[1].match[0]", 'rule "dup" match #0 is not used'),
            (WARNING, "spec.http[1]", 'rule "dup" not used (all matches used by prior rules)'),
        ],
    ),
    (
        "duplicate-hosts",
        vs(ROUTE.join("{}"), hosts="[a.example.com, '*.example.com']"),
        [
            (
                ERROR,
                "spec.hosts",
                "duplicate hosts in virtual service: a.example.com & *.example.com",
            )
        ],
    ),
    (
        "wildcard-host-on-mesh",
        vs(ROUTE.join("{}"), hosts="['*']"),
        [(ERROR, "spec.hosts[0]", "wildcard host * is not allowed for virtual services bound")],
    ),
    (
        "invalid-host",
        vs(ROUTE.join("{}"), hosts="[Bad_Host.example.com]"),
        [(ERROR, "spec.hosts[0]", 'domain name "Bad_Host.example.com" invalid (label "Bad_Host"')],
    ),
    (
        "no-routes-at-all",
        vs(),
        [(ERROR, "spec", "http, tcp or tls must be provided in virtual service")],
    ),
    (
        "no-hosts",
        vs(ROUTE.join("{}"), hosts="[]"),
        [(ERROR, "spec.hosts", "virtual service must have at least one host")],
    ),
    (
        "bad-source-namespace-and-match-port",
        vs(f"{{match: [{{sourceNamespace: Bad_NS, port: 0}}], {ROUTE}}}"),
        [(ERROR, f"{M0}.sourceNamespace", "sourceNamespace match Bad_NS is invalid")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_virtual_service_rules(text: str, expected: list[Expected]) -> None:
    """Each VirtualService case yields exactly the expected diagnostics, paths and severities."""
    assert_diagnostics(validate_text(text), expected)


def test_diagnostic_renders_file_document_ref_and_path() -> None:
    """A diagnostic prints as file:index: kind/ns/name: field.path: message."""
    diags = validate_text(vs("{route: [{destination: {host: a}, weight: -1}]}"))
    assert [str(d) for d in diags] == [
        "case.yaml:0: VirtualService/default/vs: spec.http[0].route[0].weight: weight -1 < 0"
    ]
