"""Data path: ``build_load_balancer``, one registry entry per ``LbKind``.

``PASSTHROUGH`` (Envoy ``ORIGINAL_DST``) forwards to the address the client connected to; an
ingress gateway has no such original destination behind it, so it is balanced as ``RANDOM``
over the cluster's hosts, the closest behaviour that still reaches a configured endpoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from gateway_core.snapshot import LbKind, LbPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LoadBalancer
from gateway_core.upstream.lb.least_request import LeastRequestLoadBalancer
from gateway_core.upstream.lb.maglev import MaglevLoadBalancer
from gateway_core.upstream.lb.random_lb import RandomLoadBalancer
from gateway_core.upstream.lb.ring_hash import RingHashLoadBalancer
from gateway_core.upstream.lb.round_robin import RoundRobinLoadBalancer

LbBuilder = Callable[[Sequence[Host], LbPolicy, random.Random], LoadBalancer]
HASH_KINDS = frozenset({LbKind.RING_HASH, LbKind.MAGLEV})


def _round_robin(hosts: Sequence[Host], _: LbPolicy, rng: random.Random) -> LoadBalancer:
    return RoundRobinLoadBalancer(hosts, rng)


def _least_request(hosts: Sequence[Host], _: LbPolicy, rng: random.Random) -> LoadBalancer:
    return LeastRequestLoadBalancer(hosts, rng)


def _random(hosts: Sequence[Host], _: LbPolicy, rng: random.Random) -> LoadBalancer:
    return RandomLoadBalancer(hosts, rng)


def _ring_hash(hosts: Sequence[Host], policy: LbPolicy, rng: random.Random) -> LoadBalancer:
    return RingHashLoadBalancer(hosts, rng, minimum_ring_size=policy.ring_size)


def _maglev(hosts: Sequence[Host], policy: LbPolicy, rng: random.Random) -> LoadBalancer:
    return MaglevLoadBalancer(hosts, rng, table_size=policy.maglev_table_size)


_BUILDERS: dict[LbKind, LbBuilder] = {
    LbKind.ROUND_ROBIN: _round_robin,
    LbKind.LEAST_REQUEST: _least_request,
    LbKind.RANDOM: _random,
    LbKind.RING_HASH: _ring_hash,
    LbKind.MAGLEV: _maglev,
    LbKind.PASSTHROUGH: _random,
}


def build_load_balancer(
    policy: LbPolicy, hosts: Sequence[Host], rng: random.Random
) -> LoadBalancer:
    """A balancer of ``policy.kind`` over exactly ``hosts`` (the caller picks the candidates)."""
    return _BUILDERS[policy.kind](hosts, policy, rng)


def build_weighted_hash_balancer(
    policy: LbPolicy, hosts: Sequence[Host], weights: Sequence[float], rng: random.Random
) -> LoadBalancer:
    """A ring-hash or maglev balancer whose host shares are ``weights`` instead of host weights.

    Used for locality-weighted hashing, where Envoy folds locality weights into the table
    instead of picking a locality first (which would break key affinity).
    """
    if policy.kind is LbKind.MAGLEV:
        return MaglevLoadBalancer(hosts, rng, table_size=policy.maglev_table_size, weights=weights)
    if policy.kind is LbKind.RING_HASH:
        return RingHashLoadBalancer(hosts, rng, minimum_ring_size=policy.ring_size, weights=weights)
    raise ValueError(f"{policy.kind.value} is not a hashing load balancer")
