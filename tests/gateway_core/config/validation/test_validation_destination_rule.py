"""Per-resource DestinationRule rules: traffic policy, locality, hashing, TLS, subsets."""

from __future__ import annotations

import pytest
from validation_testkit import ERROR, WARNING, Expected, assert_diagnostics, doc, validate_text

TP = "spec.trafficPolicy"
LB = f"{TP}.loadBalancer"
LOC = f"{LB}.localityLbSetting"
OUTLIER = "outlierDetection: {consecutive5xxErrors: 1, interval: 1s}"


def rule(policy: str, subsets: str = "", host: str = "reviews") -> str:
    """A DestinationRule; ``policy`` is a one-line flow mapping for trafficPolicy."""
    spec = f"host: {host}\n" + (f"trafficPolicy: {policy}\n" if policy else "") + subsets
    return doc("DestinationRule", spec, name="reviews")


def locality(setting: str, outlier: bool = True) -> str:
    extra = f", {OUTLIER}" if outlier else ""
    return rule(f"{{loadBalancer: {{localityLbSetting: {setting}}}{extra}}}")


CASES: list[tuple[str, str, list[Expected]]] = [
    (
        "valid-policy",
        rule(
            "{loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 10s}}, connectionPool: "
            "{tcp: {maxConnections: 1, connectTimeout: 2s, idleTimeout: 0s}, http: "
            "{http1MaxPendingRequests: 1}}, outlierDetection: {consecutive5xxErrors: 1, "
            "interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}}"
        ),
        [],
    ),
    (
        "empty-traffic-policy",
        rule("{}"),
        [(ERROR, TP, "traffic policy must have at least one field")],
    ),
    (
        "empty-connection-pool",
        rule("{connectionPool: {}}"),
        [(ERROR, f"{TP}.connectionPool", "connection pool must have at least one field")],
    ),
    (
        "h2-upgrade-with-client-protocol",
        rule("{connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}"),
        [(ERROR, f"{TP}.connectionPool.http.useClientProtocol", "must not be true when")],
    ),
    (
        "local-origin-failures-without-split",
        rule("{outlierDetection: {consecutiveLocalOriginFailures: 3}}"),
        [
            (
                ERROR,
                f"{TP}.outlierDetection.consecutiveLocalOriginFailures",
                "consecutive local origin failures is specified, but split external local "
                "origin errors is set to false",
            )
        ],
    ),
    (
        "consecutive-errors-deprecated-and-bad-interval",
        rule("{outlierDetection: {consecutiveErrors: 5, interval: 0.0001s}}"),
        [
            (
                WARNING,
                f"{TP}.outlierDetection.consecutiveErrors",
                "consecutive errors is deprecated",
            ),
            (ERROR, f"{TP}.outlierDetection.interval", "duration must be greater than 1ms"),
        ],
    ),
    (
        "distribute-and-failover",
        locality(
            "{distribute: [{from: 'r1/*', to: {'r1/*': 100}}], failover: [{from: r1, to: r2}]}"
        ),
        [(ERROR, LOC, "can not simultaneously specify 'distribute' and 'failover'")],
    ),
    (
        "distribute-weight-out-of-range",
        locality("{distribute: [{from: 'r1/z1/*', to: {'r1/z1/*': 0, 'r1/z2/*': 100}}]}"),
        [(ERROR, f"{LOC}.distribute[0].to.r1/z1/*", "locality weight must be in range [1, 100]")],
    ),
    (
        "distribute-total-not-100",
        locality("{distribute: [{from: 'r1/z1/*', to: {'r1/z1/*': 70, 'r1/z2/*': 20}}]}"),
        [(ERROR, f"{LOC}.distribute[0].to", "total locality weight 90 != 100")],
    ),
    (
        "distribute-overlapping-destinations",
        locality("{distribute: [{from: r1, to: {'r1/*': 50, 'r1/z2': 50}}]}"),
        [(ERROR, f"{LOC}.distribute[0].to", "locality r1/z2 overlap with previous specified ones")],
    ),
    (
        "failover-same-region-slash-and-wildcard",
        locality("{failover: [{from: r1, to: r1}, {from: r1/z1, to: r2}, {from: '*', to: r2}]}"),
        [
            (ERROR, f"{LOC}.failover[0]", "locality lb failover settings must specify different"),
            (ERROR, f"{LOC}.failover[1]", "locality lb failover only specify region"),
            (ERROR, f"{LOC}.failover[2]", "region should not contain '*' wildcard"),
        ],
    ),
    (
        "failover-without-outlier-detection",
        locality("{failover: [{from: r1, to: r2}]}", outlier=False),
        [
            (
                WARNING,
                f"{LOC}.failover",
                "outlier detection policy must be provided for failover: without "
                "outlierDetection locality failover will not take effect",
            )
        ],
    ),
    (
        "failover-priority-without-outlier-detection",
        locality("{failoverPriority: [topology.istio.io/network]}", outlier=False),
        [(WARNING, f"{LOC}.failoverPriority", "outlier detection policy must be provided")],
    ),
    (
        "failover-with-topology-priority",
        locality(
            "{failover: [{from: r1, to: r2}], failoverPriority: [topology.kubernetes.io/zone]}"
        ),
        [(ERROR, f"{LOC}.failoverPriority[0]", "topology label 'topology.kubernetes.io/zone'")],
    ),
    (
        "maglev-not-prime",
        rule(
            "{loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65536}}}}"
        ),
        [(ERROR, f"{LB}.consistentHash.maglev.tableSize", "tableSize must be a prime number")],
    ),
    (
        "maglev-too-large",
        rule("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 5000077}}}}"),
        [(ERROR, f"{LB}.consistentHash.maglev.tableSize", "tableSize must be less than 5000011")],
    ),
    (
        "maglev-zero",
        rule("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 0}}}}"),
        [(ERROR, f"{LB}.consistentHash.maglev.tableSize", "tableSize must be set for maglev")],
    ),
    (
        "valid-maglev-prime",
        rule("{loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}}"),
        [],
    ),
    (
        "ring-hash-too-large",
        rule(
            "{loadBalancer: {consistentHash: {useSourceIp: true, "
            "ringHash: {minimumRingSize: 9000000}}}}"
        ),
        [(ERROR, f"{LB}.consistentHash.ringHash.minimumRingSize", "exceeds Envoy's maximum")],
    ),
    (
        "consistent-hash-without-key",
        rule("{loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}"),
        [(ERROR, f"{LB}.consistentHash", "consistentHash must set one of httpHeaderName")],
    ),
    (
        "warmup-with-random",
        rule("{loadBalancer: {simple: RANDOM, warmup: {duration: 10s, aggression: 0.5}}}"),
        [
            (ERROR, f"{LB}.warmup.aggression", "aggression should be greater than or equal to 1"),
            (WARNING, f"{LB}.warmup", "slow start applies only to ROUND_ROBIN and LEAST_REQUEST"),
        ],
    ),
    (
        "duplicate-and-invalid-subset-names",
        rule("", subsets="subsets:\n- {name: v1}\n- {name: v1}\n- {name: V_2}\n"),
        [
            (ERROR, "spec.subsets[1].name", "duplicate subset names: v1"),
            (ERROR, "spec.subsets[2].name", "subset name is invalid: V_2"),
        ],
    ),
    (
        "subset-policy-path",
        rule("", subsets="subsets:\n- {name: v1, trafficPolicy: {connectionPool: {}}}\n"),
        [(ERROR, "spec.subsets[0].trafficPolicy.connectionPool", "connection pool must have")],
    ),
    (
        "client-mutual-without-certificate",
        rule("{tls: {mode: MUTUAL}}"),
        [
            (ERROR, f"{TP}.tls.clientCertificate", "client certificate required for mutual tls"),
            (ERROR, f"{TP}.tls.privateKey", "private key required for mutual tls"),
        ],
    ),
    ("client-mutual-with-credential", rule("{tls: {mode: MUTUAL, credentialName: c}}"), []),
    (
        "client-credential-and-files",
        rule("{tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}"),
        [(ERROR, f"{TP}.tls", "cannot specify client certificates or CA certificate")],
    ),
    (
        "istio-mutual-alone-is-plaintext",
        rule("{tls: {mode: ISTIO_MUTUAL, sni: reviews.example}}"),
        [(WARNING, f"{TP}.tls.mode", "no mesh identity and will connect in plaintext")],
    ),
    (
        "istio-mutual-with-certificate",
        rule("{tls: {mode: ISTIO_MUTUAL, clientCertificate: /c.pem}}"),
        [(ERROR, f"{TP}.tls.clientCertificate", "ISTIO_MUTUAL TLS cannot have associated")],
    ),
    (
        "port-level-settings-need-port-and-fields",
        rule("{portLevelSettings: [{tls: {mode: SIMPLE}}, {port: {number: 80}}]}"),
        [
            (ERROR, f"{TP}.portLevelSettings[0].port", "portTrafficPolicy must have valid port"),
            (ERROR, f"{TP}.portLevelSettings[1]", "port traffic policy must have at least one"),
        ],
    ),
    (
        "invalid-host",
        rule("", host="Reviews"),
        [(ERROR, "spec.host", 'domain name "Reviews" invalid')],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_destination_rule_rules(text: str, expected: list[Expected]) -> None:
    """Each DestinationRule case yields exactly the expected diagnostics, paths and severities."""
    assert_diagnostics(validate_text(text), expected)
