"""Per-resource ServiceEntry rules: hosts, ports, addresses, resolution and endpoints."""

from __future__ import annotations

import pytest
from validation_testkit import ERROR, WARNING, Expected, assert_diagnostics, doc, validate_text

HTTP_PORT = "ports: [{number: 80, name: http, protocol: HTTP}]"


def entry(spec: str) -> str:
    return doc("ServiceEntry", spec, name="se")


CASES: list[tuple[str, str, list[Expected]]] = [
    (
        "valid-dns",
        entry(
            "hosts: [www.googleapis.com]\nports: [{number: 80, name: http, protocol: HTTP}, "
            "{number: 443, name: https, protocol: HTTPS}]\nresolution: DNS"
        ),
        [],
    ),
    (
        "valid-static",
        entry(
            f"hosts: [api.internal]\n{HTTP_PORT}\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1, locality: r1/z1/s1, labels: {version: v1}}, "
            "{address: '2001:db8::1', ports: {http: 8080}}]"
        ),
        [],
    ),
    (
        "valid-static-unix",
        entry(
            f"hosts: [api.internal]\n{HTTP_PORT}\nresolution: STATIC\n"
            "endpoints: [{address: 'unix:///var/run/api.sock'}]"
        ),
        [],
    ),
    (
        "host-star",
        entry(f"hosts: ['*']\n{HTTP_PORT}\nresolution: NONE"),
        [(ERROR, "spec.hosts[0]", "invalid host *")],
    ),
    (
        "partial-wildcard-host",
        entry(f"hosts: ['*foo.example.com']\n{HTTP_PORT}\nresolution: NONE"),
        [(WARNING, "spec.hosts[0]", 'partial wildcard "*foo.example.com" not allowed')],
    ),
    (
        "duplicate-ports",
        entry(
            "hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, "
            "{number: 80, name: http, protocol: HTTP}]\nresolution: DNS"
        ),
        [
            (ERROR, "spec.ports[1].name", 'service entry port name "http" already defined'),
            (ERROR, "spec.ports[1].number", "service entry port 80 already defined"),
        ],
    ),
    (
        "bad-port-name-and-protocol",
        entry(
            "hosts: [a.example.com]\nports: [{number: 80, name: Web_Port, protocol: SPDY}]\n"
            "resolution: DNS"
        ),
        [
            (ERROR, "spec.ports[0].name", "invalid port name: Web_Port"),
            (ERROR, "spec.ports[0].protocol", "unsupported protocol: SPDY"),
        ],
    ),
    (
        "none-with-endpoints",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: NONE\n"
            "endpoints: [{address: 10.0.0.1}]"
        ),
        [(ERROR, "spec.endpoints", "no endpoints should be provided for resolution type none")],
    ),
    (
        "static-with-hostname-endpoint",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: STATIC\n"
            "endpoints: [{address: backend.example.com}]"
        ),
        [(ERROR, "spec.endpoints[0].address", '"backend.example.com" is not a valid IP address')],
    ),
    (
        "static-without-endpoints",
        entry(f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: STATIC"),
        [(WARNING, "spec.endpoints", "STATIC resolution without endpoints")],
    ),
    (
        "dns-with-hostname-endpoint",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: DNS\n"
            "endpoints: [{address: backend.example.com}]"
        ),
        [],
    ),
    (
        "dns-round-robin-two-endpoints",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: DNS_ROUND_ROBIN\n"
            "endpoints: [{address: b1.example.com}, {address: b2.example.com}]"
        ),
        [(ERROR, "spec.endpoints", "there must only be 0 or 1 endpoint for resolution mode")],
    ),
    (
        "dns-wildcard-without-endpoints",
        entry(f"hosts: ['*.example.com']\n{HTTP_PORT}\nresolution: DNS"),
        [(ERROR, "spec.hosts[0]", "hosts must be FQDN if no endpoints are provided")],
    ),
    (
        "dynamic-dns-unsupported",
        entry(f"hosts: ['*.example.com', api.example.com]\n{HTTP_PORT}\nresolution: DYNAMIC_DNS"),
        [
            (ERROR, "spec.resolution", "resolution DYNAMIC_DNS is not supported by this gateway"),
            (ERROR, "spec.hosts[1]", "DYNAMIC_DNS resolution requires wildcard hosts"),
        ],
    ),
    (
        "cidr-with-dns",
        entry(
            f"hosts: [a.example.com]\naddresses: [10.0.0.0/24, 300.1.1.1]\n{HTTP_PORT}\n"
            "resolution: DNS"
        ),
        [
            (ERROR, "spec.addresses[1]", "300.1.1.1 is not a valid IP"),
            (ERROR, "spec.addresses", "CIDR addresses are allowed only for NONE/STATIC"),
        ],
    ),
    (
        "endpoint-port-not-declared",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1, ports: {grpc: 9090}}]"
        ),
        [(ERROR, "spec.endpoints[0].ports.grpc", "endpoint port 9090 is not defined by the")],
    ),
    (
        "endpoint-locality-malformed",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: STATIC\n"
            "endpoints: [{address: 10.0.0.1, locality: 'r1//s1'}, "
            "{address: 10.0.0.2, locality: 'r1/*'}]"
        ),
        [
            (ERROR, "spec.endpoints[0].locality", "must not contain empty region/zone/subzone"),
            (ERROR, "spec.endpoints[1].locality", "locality r1/* must not contain '*'"),
        ],
    ),
    (
        "workload-selector-with-endpoints",
        entry(
            f"hosts: [a.example.com]\n{HTTP_PORT}\nresolution: STATIC\n"
            "workloadSelector: {labels: {app: a}}\nendpoints: [{address: 10.0.0.1}]"
        ),
        [(ERROR, "spec.workloadSelector", "only one of WorkloadSelector or Endpoints is allowed")],
    ),
    (
        "multiple-hosts-with-tcp-port",
        entry(
            "hosts: [a.example.com, b.example.com]\n"
            "ports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS"
        ),
        [(ERROR, "spec.ports[0]", "multiple hosts provided with non-HTTP, non-TLS ports")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_service_entry_rules(text: str, expected: list[Expected]) -> None:
    """Each ServiceEntry case yields exactly the expected diagnostics, paths and severities."""
    assert_diagnostics(validate_text(text), expected)
