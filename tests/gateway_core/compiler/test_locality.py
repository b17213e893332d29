"""Istio localityLbSetting translation: failover priorities, failoverPriority, distribute."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

from gateway_core.compiler.locality import (
    apply_distribute,
    assign_priorities,
    failover_priority_level,
    locality_matches,
    locality_priority,
)
from gateway_core.config.destination_rule import LocalityDistribute, LocalityLoadBalancerSetting
from gateway_core.snapshot import EMPTY_LABELS, EndpointSpec, Locality
from tests.helpers import shared_path

CLIENT = Locality("region1", "zone1")
TASK_LOCALITIES = ["region1/zone1", "region1/zone2", "region2/zone3", "region3/zone4"]

NETWORK = "topology.istio.io/network"
REGION = "topology.kubernetes.io/region"
ZONE = "topology.kubernetes.io/zone"
SUBZONE = "topology.istio.io/subzone"


def _endpoints(localities: list[str], weights: list[int] | None = None) -> list[EndpointSpec]:
    return [
        EndpointSpec(
            f"10.0.0.{i}",
            80,
            weight=(weights or [1] * len(localities))[i],
            locality=Locality.parse(loc),
        )
        for i, loc in enumerate(localities)
    ]


def _setting(data: Mapping[str, Any]) -> LocalityLoadBalancerSetting:
    return LocalityLoadBalancerSetting.model_validate(data)


def _task_setting(name: str) -> LocalityLoadBalancerSetting:
    path = shared_path(f"istio-samples/tasks/{name}")
    doc = yaml.safe_load(path.read_text())
    return _setting(doc["spec"]["trafficPolicy"]["loadBalancer"]["localityLbSetting"])


@pytest.mark.parametrize(
    ("endpoint", "failover", "expected"),
    [
        ("region1/zone1/sub1", [], 0),
        ("region1/zone1/sub2", [], 1),
        ("region1/zone2", [], 2),
        ("region2/zone3", [], 3),
        ("region2/zone3", [("region1", "region2")], 3),
        ("region3/zone4", [("region1", "region2")], 4),
        ("region3/zone4", [("region9", "region2")], 3),
    ],
)
def test_locality_priority(endpoint: str, failover: list[tuple[str, str]], expected: int) -> None:
    """0 same subzone, 1 same zone, 2 same region, 3 other, 4 region not the failover target."""
    assert (
        locality_priority(Locality("region1", "zone1", "sub1"), Locality.parse(endpoint), failover)
        == expected
    )


def test_istio_failover_task_priorities() -> None:
    """Istio failover task: client region1/zone1, failover region1 -> region2: P0..P3."""
    setting = _task_setting("locality-failover.yaml")
    result = assign_priorities(
        CLIENT, {}, _endpoints(TASK_LOCALITIES), setting, outlier_enabled=True
    )
    assert [e.priority for e in result] == [0, 1, 2, 3]


def test_default_failover_without_rules() -> None:
    """Mesh default (no DR setting): other regions share the last level."""
    result = assign_priorities(CLIENT, {}, _endpoints(TASK_LOCALITIES), None, outlier_enabled=True)
    assert [e.priority for e in result] == [0, 1, 2, 2]


@pytest.mark.parametrize(
    ("setting", "outlier"),
    [
        ({"failover": [{"from": "region1", "to": "region2"}]}, False),
        ({"enabled": False, "failover": [{"from": "region1", "to": "region2"}]}, True),
        ({"distribute": [{"from": "region1/*", "to": {"region1/*": 100}}]}, True),
    ],
)
def test_failover_needs_outlier_detection_and_enabled(
    setting: dict[str, Any], outlier: bool
) -> None:
    """No outlier detection, enabled: false, or distribute: every endpoint stays priority 0."""
    eps = [dataclasses.replace(e, priority=7) for e in _endpoints(TASK_LOCALITIES)]
    result = assign_priorities(CLIENT, {}, eps, _setting(setting), outlier_enabled=outlier)
    assert [e.priority for e in result] == [0, 0, 0, 0]


@pytest.mark.parametrize(
    ("endpoint_labels", "expected"),
    [
        ({NETWORK: "n1", REGION: "r1", ZONE: "z1", SUBZONE: "s1"}, 0),
        ({NETWORK: "n1", REGION: "r1", ZONE: "z1", SUBZONE: "s2"}, 1),
        ({NETWORK: "n1", REGION: "r1", ZONE: "z2", SUBZONE: "s1"}, 2),
        ({NETWORK: "n1", REGION: "r2", ZONE: "z1", SUBZONE: "s1"}, 3),
        ({NETWORK: "n2", REGION: "r1", ZONE: "z1", SUBZONE: "s1"}, 4),
        ({NETWORK: "n2", REGION: "r2", ZONE: "z9", SUBZONE: "s9"}, 7),
        ({NETWORK: "n1"}, 3),
    ],
)
def test_failover_priority_proto_example(endpoint_labels: dict[str, str], expected: int) -> None:
    """Proto example [network, region, zone, subzone]: match all -> 0, first mismatch at j -> 4-j;
    another network ranks after every same-network endpoint (4 + rank of the rest)."""
    client = {NETWORK: "n1", REGION: "r1", ZONE: "z1", SUBZONE: "s1"}
    assert (
        failover_priority_level([NETWORK, REGION, ZONE, SUBZONE], client, endpoint_labels)
        == expected
    )


def test_failover_priority_key_value_compares_with_literal() -> None:
    """``key=value`` compares the endpoint label with the literal, not with the client's label."""
    order = ["custom=blue", "version"]
    client = {"custom": "green", "version": "v1"}
    assert failover_priority_level(order, client, {"custom": "blue", "version": "v1"}) == 0
    assert failover_priority_level(order, client, {"custom": "green", "version": "v1"}) == 2
    assert failover_priority_level(order, client, {"custom": "blue", "version": "v2"}) == 1
    assert failover_priority_level(["a=b=c"], {"a": "x"}, {"a": "x"}) == 0


def test_nth_label_counts_only_after_the_previous_ones_match() -> None:
    """A later match does not help once an earlier label differs."""
    order = ["region", "zone"]
    client = {"region": "r1", "zone": "z1"}
    assert failover_priority_level(order, client, {"region": "r2", "zone": "z1"}) == 2
    assert failover_priority_level(order, client, {}) == 2


def _labelled(labels: list[dict[str, str]], localities: list[str]) -> list[EndpointSpec]:
    return [
        EndpointSpec(f"10.0.1.{i}", 80, locality=Locality.parse(loc), labels=lab)
        for i, (lab, loc) in enumerate(zip(labels, localities, strict=True))
    ]


def test_failover_priority_assigns_and_compacts() -> None:
    """failoverPriority ranks (0, 2) compact to priorities 0 and 1."""
    setting = _setting({"failoverPriority": ["region", "zone"]})
    eps = _labelled([{"region": "r1", "zone": "z1"}, {"region": "r2"}], ["r1/z1", "r2/z1"])
    result = assign_priorities(CLIENT, {"region": "r1", "zone": "z1"}, eps, setting, True)
    assert [e.priority for e in result] == [0, 1]


def test_failover_priority_combined_with_failover_uses_tuple_order() -> None:
    """Label rank first, locality rank second: (0,0) < (0,3) < (1,0) < (1,4)."""
    setting = _setting(
        {"failoverPriority": ["tier"], "failover": [{"from": "region1", "to": "region2"}]}
    )
    eps = _labelled(
        [{"tier": "gold"}, {"tier": "gold"}, {"tier": "silver"}, {"tier": "silver"}],
        ["region1/zone1", "region2/zone1", "region1/zone1", "region3/zone1"],
    )
    result = assign_priorities(CLIENT, {"tier": "gold"}, eps, setting, True)
    assert [e.priority for e in result] == [0, 1, 2, 3]


def test_failover_priority_ignored_without_client_labels() -> None:
    """Istio skips failoverPriority when the gateway has no labels: everything stays 0."""
    setting = _setting({"failoverPriority": ["tier"]})
    eps = _labelled([{"tier": "gold"}, {"tier": "silver"}], ["region1/zone1", "region9/zone1"])
    assert [e.priority for e in assign_priorities(CLIENT, EMPTY_LABELS, eps, setting, True)] == [
        0,
        0,
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("region1", True),
        ("region1/*", True),
        ("region1/zone1/*", True),
        ("*", True),
        ("region1/zone2", False),
        ("region2/*", False),
    ],
)
def test_locality_matches(pattern: str, expected: bool) -> None:
    """Istio LocalityMatch: missing or ``*`` parts match anything."""
    assert locality_matches(Locality("region1", "zone1", "s"), pattern) is expected


def test_istio_distribute_task_seventy_twenty_zero_ten() -> None:
    """Istio distribute task: 70/20/0/10; region2/zone3 receives nothing (its endpoints drop)."""
    setting = _task_setting("locality-distribute.yaml")
    result = apply_distribute(CLIENT, _endpoints(TASK_LOCALITIES), setting.distribute)
    assert {str(e.locality): e.locality_weight for e in result} == {
        "region1/zone1": 70,
        "region1/zone2": 20,
        "region3/zone4": 10,
    }
    assert assign_priorities(CLIENT, {}, result, setting, True) == tuple(result)


def test_distribute_wildcard_splits_by_original_weight_with_ceil() -> None:
    """``region1/*: 100`` over localities weighing 2 and 1 -> ceil(66.7)=67 and ceil(33.3)=34."""
    rule = LocalityDistribute.model_validate({"from": "region1/zone1/*", "to": {"region1/*": 100}})
    eps = _endpoints(["region1/zone1", "region1/zone1", "region1/zone2"], weights=[1, 1, 1])
    assert [e.locality_weight for e in apply_distribute(CLIENT, eps, [rule])] == [67, 67, 34]


def test_distribute_without_matching_from_keeps_original_weights() -> None:
    """No rule for our locality: each locality keeps the sum of its endpoint weights."""
    rule = LocalityDistribute.model_validate({"from": "region9/*", "to": {"region1/*": 100}})
    eps = _endpoints(["region1/zone1", "region1/zone1", "region2/zone1"], weights=[2, 3, 4])
    assert [e.locality_weight for e in apply_distribute(CLIENT, eps, [rule])] == [5, 5, 4]


def test_first_matching_pattern_claims_a_locality() -> None:
    """A locality matched by two ``to`` patterns is weighted by the first one only."""
    rule = LocalityDistribute.model_validate(
        {"from": "*", "to": {"region1/zone1": 80, "region1/*": 20}}
    )
    eps = _endpoints(["region1/zone1", "region1/zone2"])
    assert [e.locality_weight for e in apply_distribute(CLIENT, eps, [rule])] == [80, 20]
