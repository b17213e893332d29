"""Data path: which destination and which host a request goes to, beyond the plain balancer.

* Weighted destinations: a draw over the weights; a signed ``SUBSET`` sticky cookie pins the
  destination while it has healthy hosts; with spill-over, a destination without any healthy
  host hands its share to the others in proportion to their weights.
* Hosts: a signed ``HOST`` sticky cookie pins the host while it is healthy and untried.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from gateway_core.proxy import sticky
from gateway_core.routing.actions import RouteAction, WeightedCluster
from gateway_core.routing.request import RequestHead
from gateway_core.snapshot import StickyPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext

if TYPE_CHECKING:
    from gateway_core.upstream.cluster import Cluster


def choose_target(
    action: RouteAction,
    clusters: Mapping[str, Cluster],
    rng: random.Random,
    key: bytes,
    req: RequestHead,
) -> tuple[WeightedCluster, bytes | None]:
    """The destination, and a ``set-cookie`` value when a SUBSET sticky policy applies."""
    targets = action.clusters
    if len(targets) == 1:
        return targets[0], None
    first = clusters.get(targets[0].cluster)
    policy = first.spec.sticky if first is not None else None
    if policy is not None and not policy.target_subset:
        policy = None
    if policy is not None:
        wanted = sticky.requested(policy, key, req.headers)
        if wanted is not None:
            for t in targets:
                c = clusters.get(t.cluster)
                if t.cluster == wanted and c is not None and c.healthy_hosts:
                    return t, None
    target = action.pick(rng.randrange(action.total_weight) if action.total_weight else 0)
    cluster = clusters.get(target.cluster)
    if cluster is not None and cluster.spec.spillover and not cluster.healthy_hosts:
        target = spill(action, target, clusters, rng)
    cookie = sticky.set_cookie(policy, key, target.cluster) if policy is not None else None
    return target, cookie


def spill(
    action: RouteAction, dead: WeightedCluster, clusters: Mapping[str, Cluster], rng: random.Random
) -> WeightedCluster:
    """Re-draw among the destinations that still have healthy hosts (weights kept)."""
    alive = [
        t
        for t in action.clusters
        if t is not dead and (c := clusters.get(t.cluster)) is not None and c.healthy_hosts
    ]
    if not alive:
        return dead
    total = sum(t.weight for t in alive)
    if total <= 0:
        return alive[rng.randrange(len(alive))]
    draw = rng.randrange(total)
    for t in alive:
        draw -= t.weight
        if draw < 0:
            return t
    return alive[-1]


def choose_host(
    cluster: Cluster, req: RequestHead, client_ip: str, key: bytes, ctx: LbContext
) -> tuple[Host | None, bytes | None]:
    """The host for one attempt, and a ``set-cookie`` value when a HOST sticky policy applies."""
    policy = cluster.spec.sticky
    if policy is not None and not policy.target_subset:
        return sticky_host(cluster, policy, key, req, ctx)
    return cluster.choose_host(ctx), None


def sticky_host(
    cluster: Cluster,
    policy: StickyPolicy,
    key: bytes,
    req: RequestHead,
    ctx: LbContext,
) -> tuple[Host | None, bytes | None]:
    """HOST mode: the cookie's host while healthy and untried, else a balancer pick."""
    wanted = sticky.requested(policy, key, req.headers) if ctx.attempt == 0 else None
    host = cluster.host_by_label.get(wanted) if wanted else None
    if host is None or not host.healthy or host.key in ctx.excluded:
        host = cluster.choose_host(ctx)
    if host is not None and host.label != wanted:
        return host, sticky.set_cookie(policy, key, host.label)
    return host, None
