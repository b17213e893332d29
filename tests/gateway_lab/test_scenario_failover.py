"""failover and gateway-loss helpers: Envoy's prediction and the per-second timeline."""

from __future__ import annotations

import pytest

from gateway_lab.scenario_failover import per_second, predicted_local, user_cluster_key
from gateway_lab.scenario_kit import Reply, ScenarioError


@pytest.mark.parametrize(
    ("healthy", "local"),
    [(14, 100), (10, 100), (9, 90), (7, 70), (5, 50), (1, 10), (0, 0)],
)
def test_predicted_local_share_is_envoys_priority_math(healthy: int, local: int) -> None:
    """min(100, 140*healthy//14): seed 001's 10 -> 100%, 5 -> 50%, 0 -> 0%."""
    assert predicted_local(healthy, 14) == local


def test_user_cluster_key_finds_the_service_cluster() -> None:
    """The user service's cluster key is found among /clusters keys; absence is an error."""
    user = "outbound|9080||user.bookinfo.svc.cluster.local"
    clusters: dict[str, object] = {user: {}, "outbound|9080||echo.x": {}}
    assert user_cluster_key(clusters, "user") == user
    with pytest.raises(ScenarioError, match="no cluster for the ratings service"):
        user_cluster_key(clusters, "ratings")


def reply(started: float, cluster: str | None) -> Reply:
    if cluster is None:
        return Reply(503, {}, "no healthy upstream", started)
    return Reply(200, {}, f'{{"cluster": "{cluster}"}}', started)


def test_per_second_rows_count_clusters_failures_and_events() -> None:
    """Whole seconds from the kill: answers per cluster, failures, events (even if idle)."""
    replies = [
        reply(98.5, "cluster-1"),
        reply(100.1, None),
        reply(100.2, "cluster-2"),
        reply(100.9, "cluster-2"),
        reply(103.2, "cluster-1"),
    ]
    events = {"kill": 100.0, "detected": 100.15, "restarted": 102.5, "returned": 103.3}
    assert per_second(replies, events) == [
        ["-2s", 1, 1, 0, 0, ""],
        ["+0s", 3, 0, 2, 1, "kill detected"],
        ["+2s", 0, 0, 0, 0, "restarted"],
        ["+3s", 1, 1, 0, 0, "returned"],
    ]
