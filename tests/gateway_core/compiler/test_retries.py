"""Tests: ``HTTPRetry`` → ``RetrySpec`` as Istio (1.24 and later) converts it.

Istio starts from its default policy (2 retries on connect-failure, refused-stream, unavailable
and cancelled, no status code, the previous-hosts predicate) and overrides the fields a
``retries`` block sets. A rule whose single destination balances by consistent hash gets no
previous-hosts predicate unless ``retryIgnorePreviousHosts`` asks for it.
"""

from __future__ import annotations

import dataclasses

import pytest

from gateway_core.routing.actions import DEFAULT_RETRY, RetrySpec
from tests.gateway_core.compiler.compiler_testkit import GATEWAY, snapshot, virtual_service

DESTINATION_RULE = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: a}
spec:
  host: a.default.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - name: hashed
    labels: {v: "1"}
    trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
  - {name: plain, labels: {v: "2"}}
"""
ONE_PLAIN = "route: [{destination: {host: a, subset: plain}}]"
ONE_HASHED = "route: [{destination: {host: a, subset: hashed}}]"
TWO_HASHED = (
    "route: [{destination: {host: a, subset: hashed}, weight: 50},"
    " {destination: {host: a, subset: hashed}, weight: 50}]"
)
NO_PREDICATE = dataclasses.replace(DEFAULT_RETRY, previous_hosts=False)
DEFAULT_ON = DEFAULT_RETRY.retry_on


def compiled_retries(retries: str, route: str) -> RetrySpec | None:
    rule = f"  - {retries}\n    {route}" if retries else f"  - {route}"
    snap = snapshot(GATEWAY + virtual_service(rule) + DESTINATION_RULE)
    (entry,) = snap.route_tables["http.80"].virtual_hosts[0].routes
    return entry.retries


@pytest.mark.parametrize(
    ("retries", "route", "expected"),
    [
        ("", ONE_PLAIN, DEFAULT_RETRY),
        ("", ONE_HASHED, NO_PREDICATE),
        ("", TWO_HASHED, DEFAULT_RETRY),
        ("retries: {attempts: 3}", ONE_PLAIN, RetrySpec(attempts=3)),
        ("retries: {attempts: 3}", ONE_HASHED, RetrySpec(attempts=3, previous_hosts=False)),
        (
            "retries: {attempts: 1, perTryTimeout: 2s, backoff: 0.1s}",
            ONE_PLAIN,
            RetrySpec(attempts=1, per_try_timeout=2.0, backoff=0.1),
        ),
        (
            "retries: {attempts: 2, retryOn: '503,reset'}",
            ONE_PLAIN,
            RetrySpec(
                retry_on=frozenset({"reset", "retriable-status-codes"}),
                retriable_status_codes=frozenset({503}),
            ),
        ),
        (
            "retries: {attempts: 2, retryOn: retriable-status-codes}",
            ONE_PLAIN,
            RetrySpec(retry_on=frozenset({"retriable-status-codes"})),
        ),
        (
            "retries: {attempts: 2, retryIgnorePreviousHosts: true}",
            ONE_HASHED,
            RetrySpec(retry_on=DEFAULT_ON),
        ),
        (
            "retries: {attempts: 2, retryIgnorePreviousHosts: false}",
            ONE_PLAIN,
            RetrySpec(previous_hosts=False),
        ),
        ("retries: {attempts: 0}", ONE_HASHED, RetrySpec(attempts=0)),
    ],
)
def test_retry_policy_as_istio_converts_it(retries: str, route: str, expected: RetrySpec) -> None:
    """Each block (or none) compiles to Istio's resulting Envoy retry policy."""
    assert compiled_retries(retries, route) == expected


def test_default_policy_retries_no_status_code() -> None:
    """Istio 1.24+: the default conditions carry no status code, so 503 is not among them,
    and the gRPC conditions unavailable (14) and cancelled (1) are."""
    spec = compiled_retries("retries: {attempts: 4}", ONE_PLAIN)
    assert spec is not None
    assert (spec.retriable_status_codes, spec.grpc_statuses) == (frozenset(), frozenset({1, 14}))
    assert spec.retry_on == {
        "connect-failure",
        "refused-stream",
        "unavailable",
        "cancelled",
        "retriable-status-codes",
    }
