"""DestinationPolicy (extension kind) rules: health check values, cookie, known host."""

from __future__ import annotations

import pytest
from validation_testkit import (
    ERROR,
    WARNING,
    Expected,
    assert_diagnostics,
    doc,
    join,
    validate_text,
)

API = "gateway.multicluster.dev/v1alpha1"
SE = doc(
    "ServiceEntry",
    "hosts: [bookinfo.tier2.mesh]\nports: [{number: 443, name: https, protocol: HTTPS}]\n"
    "resolution: DNS",
    name="tier2",
)


GRPC_SE = doc(
    "ServiceEntry",
    "hosts: [grpc-demo]\nports: [{number: 50051, name: grpc, protocol: GRPC}]\nresolution: DNS",
    name="grpc-demo",
)


def policy(spec: str, *others: str) -> str:
    return join(*others, doc("DestinationPolicy", spec, name="p", api=API))


def grpc_rule(tls: str) -> str:
    """A DestinationRule for ``grpc-demo`` whose subset ``v1`` has the ``tls`` block (flow)."""
    return doc(
        "DestinationRule",
        f"host: grpc-demo\nsubsets:\n- name: v1\n  labels: {{version: v1}}\n"
        f"  trafficPolicy: {{tls: {tls}}}",
        name="grpc-demo",
    )


CASES: list[tuple[str, str, list[Expected]]] = [
    (
        "valid",
        policy(
            "host: bookinfo.tier2.mesh\nhealthCheck: {path: /healthz/ready, interval: 2s, "
            "timeout: 1s}\nstickySession: {cookie: {name: gw-affinity, ttl: 1h}}",
            SE,
        ),
        [],
    ),
    (
        "unknown-host",
        policy("host: other.mesh\nspillover: {enabled: true}", SE),
        [(WARNING, "spec.host", "host other.mesh matches no ServiceEntry, DestinationRule")],
    ),
    (
        "host-known-through-route-destination",
        policy(
            "host: reviews",
            doc(
                "VirtualService",
                "hosts: [a.example.com]\nhttp: [{route: [{destination: {host: reviews}}]}]",
            ),
        ),
        [],
    ),
    (
        "host-known-through-wildcard",
        policy("host: '*.tier2.mesh'", SE),
        [],
    ),
    (
        "health-check-values",
        policy(
            "host: bookinfo.tier2.mesh\nhealthCheck: {path: healthz, interval: 1s, timeout: 2s, "
            "expectedStatuses: [200, 99]}",
            SE,
        ),
        [
            (ERROR, "spec.healthCheck.path", "health check path 'healthz' must start with '/'"),
            (WARNING, "spec.healthCheck.timeout", "timeout 2s is not shorter than interval 1s"),
            (ERROR, "spec.healthCheck.expectedStatuses[1]", "HTTP status 99 is not in range"),
        ],
    ),
    (
        "health-check-sub-ms-interval",
        policy("host: bookinfo.tier2.mesh\nhealthCheck: {interval: 1.0001s}", SE),
        [(ERROR, "spec.healthCheck.interval", "only durations to ms precision are supported")],
    ),
    (
        "grpc-health-check",
        policy(
            "host: grpc-demo\nhealthCheck: {grpc: {serviceName: demo.v1.Demo, authority: "
            "grpc.example.com}, interval: 1s, timeout: 500ms}",
            GRPC_SE,
        ),
        [],
    ),
    (
        "grpc-health-check-with-http-fields",
        policy(
            "host: grpc-demo\nhealthCheck: {grpc: {}, path: /healthz, expectedStatuses: [200], "
            "host: x.example, interval: 1s, timeout: 2s}",
            GRPC_SE,
        ),
        [
            (ERROR, "spec.healthCheck.path", "path does not apply to a gRPC health check"),
            (
                ERROR,
                "spec.healthCheck.expectedStatuses",
                "expectedStatuses does not apply to a gRPC health check (a gRPC probe passes "
                "on SERVING)",
            ),
            (ERROR, "spec.healthCheck.host", "host does not apply to a gRPC health check"),
            (WARNING, "spec.healthCheck.timeout", "timeout 2s is not shorter than interval 1s"),
        ],
    ),
    (
        "grpc-health-check-empty-authority",
        policy("host: grpc-demo\nhealthCheck: {grpc: {authority: ''}}", GRPC_SE),
        [(ERROR, "spec.healthCheck.grpc.authority", "authority '' must be a non-empty")],
    ),
    (
        "grpc-health-check-insecure-skip-verify",
        policy(
            "host: grpc-demo\nhealthCheck: {grpc: {}}",
            GRPC_SE,
            grpc_rule("{mode: SIMPLE, insecureSkipVerify: true}"),
        ),
        [
            (
                ERROR,
                "spec.healthCheck.grpc",
                "DestinationRule default/grpc-demo sets tls.insecureSkipVerify, which a gRPC "
                "health check cannot honour",
            )
        ],
    ),
    (
        "grpc-health-check-subject-alt-names",
        policy(
            "host: grpc-demo\nhealthCheck: {grpc: {}}",
            GRPC_SE,
            grpc_rule("{mode: SIMPLE, subjectAltNames: [pod.example]}"),
        ),
        [
            (
                WARNING,
                "spec.healthCheck.grpc",
                "a gRPC health probe checks the certificate against the server name",
            )
        ],
    ),
    (
        "grpc-health-check-with-verified-tls",
        policy(
            "host: grpc-demo\nhealthCheck: {grpc: {}}",
            GRPC_SE,
            grpc_rule("{mode: SIMPLE, sni: grpc.example.com}"),
        ),
        [],
    ),
    (
        "http-health-check-ignores-tls-of-the-rule",
        policy(
            "host: grpc-demo\nhealthCheck: {path: /healthz}",
            GRPC_SE,
            grpc_rule("{mode: SIMPLE, insecureSkipVerify: true}"),
        ),
        [],
    ),
    (
        "sticky-cookie",
        policy(
            "host: bookinfo.tier2.mesh\nstickySession: {cookie: {name: 'bad name', path: x}}",
            SE,
        ),
        [
            (
                ERROR,
                "spec.stickySession.cookie.name",
                "cookie name 'bad name' is not a valid token",
            ),
            (ERROR, "spec.stickySession.cookie.path", "cookie path 'x' must start with '/'"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_destination_policy_rules(text: str, expected: list[Expected]) -> None:
    """Each DestinationPolicy case yields exactly the expected diagnostics and paths."""
    assert_diagnostics(validate_text(text), expected)
