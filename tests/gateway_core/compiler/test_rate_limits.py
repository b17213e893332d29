"""Tests for gateway_core/compiler/ratelimits.py: where LocalRateLimits and the loop guard land
in the snapshot (the gateway-wide chain, the chains of the routes they name)."""

from __future__ import annotations

import dataclasses

from compiler_testkit import GATEWAY, NODE, snapshot, virtual_service

from gateway_core.routing.loop_guard import LoopGuardSpec
from gateway_core.routing.ratelimit import KeySource, RateLimitSpec
from gateway_core.routing.route_table import RouteEntry
from gateway_core.snapshot import Snapshot

RULES = """  - name: api
    match: [{uri: {prefix: /api}}]
    corsPolicy: {allowOrigins: [{exact: "https://app"}]}
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: a.default.svc.cluster.local}}]
  - route: [{destination: {host: b.default.svc.cluster.local}}]
"""


def limit(name: str, spec: str) -> str:
    return f"""---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: LocalRateLimit
metadata: {{name: {name}}}
spec:
{spec}
"""


BUCKET = "  tokenBucket: {maxTokens: 5, tokensPerFill: 2, fillInterval: 2s}\n"


def routes(snap: Snapshot) -> dict[str, RouteEntry]:
    [table] = snap.route_tables.values()
    return {e.name: e for vh in table.virtual_hosts for e in vh.routes}


def test_gateway_wide_limits_join_the_gateway_chain_in_file_order() -> None:
    text = GATEWAY + virtual_service(RULES)
    text += limit("all", BUCKET) + limit(
        "per-ip", BUCKET + "  descriptor: {remoteAddress: {}}\n  maxKeys: 7\n"
    )
    snap = snapshot(text)
    assert snap.gateway_filters == (
        RateLimitSpec("default/all", 5, 2, 2.0),
        RateLimitSpec("default/per-ip", 5, 2, 2.0, source=KeySource.REMOTE_ADDRESS, max_keys=7),
    )
    assert all(e.rate_limits == () for e in routes(snap).values())


def test_a_virtual_service_limit_joins_every_route_of_it() -> None:
    text = GATEWAY + virtual_service(RULES) + limit("vs", "  virtualService: vs\n" + BUCKET)
    snap = snapshot(text)
    spec = RateLimitSpec("default/vs", 5, 2, 2.0)
    entries = routes(snap)
    assert [e.rate_limits for e in entries.values()] == [(spec,), (spec,)]
    assert snap.gateway_filters == ()
    # CORS first, then the limit, then the fault and the action (Envoy's filter order).
    api = entries["default/vs/http[0].api"]
    assert api.filters == (api.cors, spec, api.fault, api.action)


def test_a_route_limit_joins_only_the_named_route() -> None:
    text = GATEWAY + virtual_service(RULES)
    text += limit(
        "api",
        "  virtualService: default/vs\n  route: api\n"
        + BUCKET
        + "  descriptor: {claim: {name: org.id}}\n",
    )
    entries = routes(snapshot(text))
    spec = RateLimitSpec("default/api", 5, 2, 2.0, source=KeySource.CLAIM, claim=("org", "id"))
    assert entries["default/vs/http[0].api"].rate_limits == (spec,)
    assert entries["default/vs/http[1]"].rate_limits == ()


def test_header_names_are_compiled_lower_case_bytes() -> None:
    text = GATEWAY + virtual_service(RULES)
    text += limit("h", BUCKET + "  descriptor: {requestHeader: {name: x-api-key}}\n")
    [spec] = snapshot(text).gateway_filters
    assert isinstance(spec, RateLimitSpec)
    assert (spec.source, spec.header) == (KeySource.HEADER, b"x-api-key")


def test_the_loop_guard_comes_first_when_the_node_has_a_gateway_id() -> None:
    node = dataclasses.replace(NODE, gateway_id="gw-1", max_gateway_hops=3, hop_secret=b"k")
    text = GATEWAY + virtual_service(RULES) + limit("all", BUCKET)
    guard, rate = snapshot(text, node).gateway_filters
    assert guard == LoopGuardSpec(b"gw-1", 3, b"k")
    assert isinstance(rate, RateLimitSpec)


def test_the_version_ignores_the_gateway_id_but_not_the_hop_budget() -> None:
    text = GATEWAY + virtual_service(RULES)
    a = dataclasses.replace(NODE, gateway_id="a", hop_secret=b"1")
    b = dataclasses.replace(NODE, gateway_id="b", hop_secret=b"2")
    assert snapshot(text, a).version == snapshot(text, b).version
    c = dataclasses.replace(a, max_gateway_hops=3)
    assert snapshot(text, a).version != snapshot(text, c).version
