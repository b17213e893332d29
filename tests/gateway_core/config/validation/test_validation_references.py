"""Cross-resource rules: gateway references and binding, destination hosts, subsets, ports,
overlapping DestinationRules and subsets that select no STATIC endpoint."""

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
    vs,
)

from gateway_core.config.loader import load_text
from gateway_core.config.validation import destination_rule_for, resolve_gateway_name

D0 = "spec.http[0].route[0].destination"


def gateway(hosts: str, name: str = "gw", namespace: str = "default") -> str:
    server = f"- {{port: {{number: 80, name: http, protocol: HTTP}}, hosts: {hosts}}}\n"
    return doc("Gateway", "servers:\n" + server, name=name, namespace=namespace)


def bound_vs(hosts: str, gateways: str) -> str:
    return vs(
        "{route: [{destination: {host: httpbin}}]}", hosts=hosts, extra=f"gateways: {gateways}\n"
    )


REVIEWS_DR = doc(
    "DestinationRule",
    "host: reviews\n"
    "subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]",
    name="reviews",
)

CASES: list[tuple[str, str, list[Expected]]] = [
    (
        "gateway-found-by-name-and-mesh",
        join(gateway("['*']"), bound_vs("['*']", "[gw, default/gw]")),
        [],
    ),
    (
        "gateway-not-found",
        join(gateway("['*']"), bound_vs("[a.example.com]", "[missing, other/gw, mesh]")),
        [
            (ERROR, "spec.gateways[0]", "gateway default/missing not found"),
            (ERROR, "spec.gateways[1]", "gateway other/gw not found"),
        ],
    ),
    (
        "match-level-gateway-not-found",
        vs("{match: [{gateways: [nope]}], route: [{destination: {host: httpbin}}]}"),
        [(ERROR, "spec.http[0].match[0].gateways[0]", "gateway default/nope not found")],
    ),
    (
        "legacy-gateway-name",
        join(gateway("['*']"), bound_vs("['*']", "[gw.default]")),
        [(WARNING, "spec.gateways[0]", 'using legacy gatewayName format "gw.default"')],
    ),
    (
        "no-host-matches-gateway",
        join(gateway("[a.example.com]"), bound_vs("[b.example.com]", "[gw]")),
        [
            (
                WARNING,
                "spec.gateways[0]",
                "no host matches gateway default/gw; the virtual service is not served by it",
            )
        ],
    ),
    (
        "wildcard-server-host-matches-subdomain",
        join(gateway("['*.example.com']"), bound_vs("[dev.example.com]", "[gw]")),
        [],
    ),
    (
        "wildcard-server-host-does-not-match-apex",
        join(gateway("['*.example.com']"), bound_vs("[example.com]", "[gw]")),
        [(WARNING, "spec.gateways[0]", "no host matches gateway default/gw")],
    ),
    (
        "server-host-namespace-restricts-binding",
        join(gateway("['other/*.example.com']"), bound_vs("[dev.example.com]", "[gw]")),
        [(WARNING, "spec.gateways[0]", "no host matches gateway default/gw")],
    ),
    (
        "server-host-dot-means-gateway-namespace",
        join(gateway("['./*.example.com']"), bound_vs("[dev.example.com]", "[gw]")),
        [],
    ),
    (
        "subset-not-found",
        join(REVIEWS_DR, vs("{route: [{destination: {host: reviews, subset: v9}}]}")),
        [
            (
                ERROR,
                f"{D0}.subset",
                "subset v9 not found in DestinationRule default/reviews for host "
                "reviews.default.svc.cluster.local",
            )
        ],
    ),
    (
        "no-destination-rule-for-subset",
        vs("{route: [{destination: {host: ratings, subset: v1}}]}"),
        [
            (
                ERROR,
                f"{D0}.subset",
                "no DestinationRule defines subsets for host ratings.default.svc.cluster.local",
            )
        ],
    ),
    (
        "subset-found-with-fqdn-destination-rule-host",
        join(
            doc(
                "DestinationRule", "host: reviews.default.svc.cluster.local\nsubsets: [{name: v1}]"
            ),
            vs("{route: [{destination: {host: reviews, subset: v1}}]}"),
        ),
        [],
    ),
    (
        "destination-rule-in-other-namespace-is-other-host",
        join(
            doc("DestinationRule", "host: reviews\nsubsets: [{name: v1}]", namespace="prod"),
            vs("{route: [{destination: {host: reviews, subset: v1}}]}"),
        ),
        [(ERROR, f"{D0}.subset", "no DestinationRule defines subsets for host reviews.default")],
    ),
    (
        "mirror-subsets-checked",
        join(
            REVIEWS_DR,
            vs(
                "{match: [{uri: {prefix: /a}}], route: [{destination: {host: reviews, "
                "subset: v1}}], mirror: {host: reviews, subset: v3}}",
                "{match: [{uri: {prefix: /m}}], route: [{destination: {host: reviews}}], "
                "mirrors: [{destination: {host: reviews, subset: v4}}]}",
            ),
        ),
        [
            (ERROR, "spec.http[0].mirror.subset", "subset v3 not found"),
            (ERROR, "spec.http[1].mirrors[0].destination.subset", "subset v4 not found"),
        ],
    ),
    (
        "destination-host-invalid",
        vs(
            "{route: [{destination: {host: Bad_Host}, weight: 50}, "
            "{destination: {host: '*'}, weight: 50}]}"
        ),
        [
            (ERROR, f"{D0}.host", 'domain name "Bad_Host" invalid'),
            (ERROR, "spec.http[0].route[1].destination.host", "invalid destination host *"),
        ],
    ),
    (
        "destination-known-through-wildcard-service-entry",
        join(
            doc(
                "ServiceEntry",
                "hosts: ['*.example.com']\nports: [{number: 443, name: https, "
                "protocol: HTTPS}]\nresolution: NONE",
            ),
            vs("{route: [{destination: {host: api.example.com}}]}"),
        ),
        [],
    ),
    (
        "destination-port-required-and-declared",
        join(
            doc(
                "ServiceEntry",
                "hosts: [www.googleapis.com]\nports: [{number: 80, name: http, "
                "protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]\nresolution: DNS",
            ),
            vs(
                "{route: [{destination: {host: www.googleapis.com}, weight: 50}, "
                "{destination: {host: www.googleapis.com, port: {number: 8443}}, weight: 50}]}"
            ),
        ),
        [
            (
                ERROR,
                f"{D0}.port",
                "destination port is required: ServiceEntry default/r declares more than one port",
            ),
            (
                ERROR,
                "spec.http[0].route[1].destination.port.number",
                "port 8443 is not a port of ServiceEntry default/r for host www.googleapis.com "
                "(80, 443)",
            ),
        ],
    ),
    (
        "subset-selects-no-static-endpoint",
        join(
            doc(
                "ServiceEntry",
                "hosts: [api.internal]\nports: [{number: 80, name: http, "
                "protocol: HTTP}]\nresolution: STATIC\n"
                "endpoints: [{address: 10.0.0.1, labels: {version: v1, zone: a}}]",
                name="api",
            ),
            doc(
                "DestinationRule",
                "host: api.internal\nsubsets: [{name: v1, labels: {version: v1}}, "
                "{name: v2, labels: {version: v2}}]",
                name="api",
            ),
        ),
        [
            (
                WARNING,
                "spec.subsets[1].labels",
                "subset v2 (version=v2) selects no endpoint of STATIC ServiceEntry default/api",
            )
        ],
    ),
    (
        "two-destination-rules-for-one-host",
        join(
            REVIEWS_DR,
            doc(
                "DestinationRule",
                "host: reviews.default.svc.cluster.local\n"
                "trafficPolicy: {loadBalancer: {simple: RANDOM}}",
                name="second",
            ),
        ),
        [
            (
                WARNING,
                "spec.host",
                "DestinationRule default/reviews (case.yaml:0) also configures host "
                "reviews.default.svc.cluster.local",
            )
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cross_resource_rules(text: str, expected: list[Expected]) -> None:
    """Each cross-resource case yields exactly the expected diagnostics, paths and severities."""
    assert_diagnostics(validate_text(text), expected)


def test_duplicate_rule_warning_names_the_ignored_rule() -> None:
    """The overlap warning is attached to the later DestinationRule, not the first one."""
    text = join(
        REVIEWS_DR, doc("DestinationRule", "host: reviews\nsubsets: [{name: v3}]", name="b")
    )
    (diag,) = validate_text(text)
    assert diag.ref == "DestinationRule/default/b"
    assert "first in file order" in diag.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mesh", None),
        ("gw", ("default", "gw")),
        ("istio-system/gw", ("istio-system", "gw")),
        ("gw.istio-system.svc.cluster.local", ("istio-system", "gw")),
    ],
)
def test_resolve_gateway_name(name: str, expected: tuple[str, str] | None) -> None:
    """Gateway entries resolve relative to the VirtualService namespace; mesh is reserved."""
    assert resolve_gateway_name(name, "default") == expected


def test_most_specific_destination_rule_wins() -> None:
    """An exact DestinationRule host beats a wildcard; the longer wildcard beats the shorter."""
    text = join(
        doc("DestinationRule", "host: '*.com'", name="broad"),
        doc("DestinationRule", "host: '*.example.com'", name="narrow"),
        doc("DestinationRule", "host: api.example.com", name="exact"),
    )
    resources = load_text(text).resources
    exact = destination_rule_for(resources, "api.example.com", "default")
    narrow = destination_rule_for(resources, "web.example.com", "default")
    broad = destination_rule_for(resources, "web.example.org", "default")
    assert exact is not None
    assert exact.name == "exact"
    assert narrow is not None
    assert narrow.name == "narrow"
    assert broad is None
