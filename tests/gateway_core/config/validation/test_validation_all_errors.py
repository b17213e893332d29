"""validate_resources reports every problem of a configuration at once, never only the first."""

from __future__ import annotations

from validation_testkit import validate_text

from gateway_core.config.diagnostics import Severity

MANY_PROBLEMS = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  servers:
  - port: {number: 443, name: https, protocol: HTTPS, targetPort: 8443}
    hosts: [shop.example.com]
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop.example.com]
  gateways: [edge, missing]
  http:
  - match: [{uri: {regex: "(?=x)"}, headers: {X-User: {exact: a}}}]
    route:
    - destination: {host: cart, subset: v9}
      weight: -5
    - destination: {host: cart}
      weight: 5
    redirect: {uri: /elsewhere, redirectCode: 200}
    timeout: 0.0001s
    retries: {attempts: 0, retryOn: "5xx"}
    fault: {delay: {exponentialDelay: 1s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart}
spec:
  host: cart
  trafficPolicy:
    connectionPool: {}
    outlierDetection: {consecutiveLocalOriginFailures: 2}
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1000}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1, labels: {version: v2}}
"""

EXPECTED_ERRORS = {
    ("Gateway/default/edge", "spec.servers[0].tls"),
    ("Gateway/default/edge", "spec.servers[0].port.targetPort"),
    ("Gateway/default/edge", "spec.servers[1].port.name"),
    ("Gateway/default/edge", "spec.servers[1].tls.mode"),
    ("VirtualService/default/shop", "spec.gateways[1]"),
    ("VirtualService/default/shop", "spec.http[0]"),
    ("VirtualService/default/shop", "spec.http[0].match[0].uri.regex"),
    ("VirtualService/default/shop", "spec.http[0].match[0].headers.X-User"),
    ("VirtualService/default/shop", "spec.http[0].route[0].weight"),
    ("VirtualService/default/shop", "spec.http[0].route"),
    ("VirtualService/default/shop", "spec.http[0].route[0].destination.subset"),
    ("VirtualService/default/shop", "spec.http[0].redirect.redirectCode"),
    ("VirtualService/default/shop", "spec.http[0].timeout"),
    ("VirtualService/default/shop", "spec.http[0].retries"),
    ("VirtualService/default/shop", "spec.http[0].fault.delay.exponentialDelay"),
    ("DestinationRule/default/cart", "spec.trafficPolicy.connectionPool"),
    (
        "DestinationRule/default/cart",
        "spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures",
    ),
    (
        "DestinationRule/default/cart",
        "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize",
    ),
    ("DestinationRule/default/cart", "spec.subsets[1].name"),
}


def test_every_problem_is_reported_at_once() -> None:
    """All errors of all three resources appear in one run, each with origin, ref and path."""
    diags = validate_text(MANY_PROBLEMS)
    errors = diags.errors
    assert {(d.ref, d.path) for d in errors} == EXPECTED_ERRORS
    assert all(d.origin is not None and d.origin.file == "case.yaml" for d in diags)
    assert {d.origin.index for d in errors if d.origin is not None} == {0, 1, 2}
    # route+redirect, fault+redirect: two conflicts on the same rule, both reported.
    conflicts = [d.message for d in errors if d.path == "spec.http[0]"]
    assert conflicts == [
        "HTTP route cannot contain both route and redirect",
        "HTTP route cannot contain both fault and redirect",
    ]
    assert not diags.ok


def test_warnings_do_not_make_the_configuration_invalid() -> None:
    """A configuration with only warnings is ok (warnings are reported, not fatal)."""
    text = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"""
    diags = validate_text(text)
    assert diags.ok
    assert [d.severity for d in diags] == [Severity.WARNING]
