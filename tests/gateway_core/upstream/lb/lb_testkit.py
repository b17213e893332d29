"""Helpers shared by the load-balancer tests."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from gateway_core.snapshot import Locality
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext, LoadBalancer


def make_host(
    name: str,
    *,
    weight: int = 1,
    priority: int = 0,
    locality: str = "",
    locality_weight: int = 0,
    port: int = 8080,
) -> Host:
    return Host(
        name,
        port,
        weight=weight,
        priority=priority,
        locality=Locality.parse(locality),
        locality_weight=locality_weight,
    )


def make_hosts(
    count: int, prefix: str = "10.0.0.", *, priority: int = 0, locality: str = "", lw: int = 0
) -> list[Host]:
    return [
        make_host(f"{prefix}{i}", priority=priority, locality=locality, locality_weight=lw)
        for i in range(count)
    ]


def picks(lb: LoadBalancer, count: int, ctx: LbContext | None = None) -> list[str]:
    """Addresses of ``count`` consecutive picks (fails on a None pick)."""
    out = []
    for _ in range(count):
        host = lb.choose_host(ctx or LbContext())
        assert host is not None
        out.append(host.address)
    return out


def tally(lb: LoadBalancer, count: int, ctx: LbContext | None = None) -> Counter[str]:
    return Counter(picks(lb, count, ctx))


def longest_run(sequence: Sequence[str], value: str) -> int:
    best = run = 0
    for item in sequence:
        run = run + 1 if item == value else 0
        best = max(best, run)
    return best


def random_keys(count: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(64) for _ in range(count)]


class ScriptedRandom(random.Random):
    """A ``random.Random`` whose ``randrange`` returns scripted values (for sampling tests)."""

    def __init__(self, values: Sequence[int]) -> None:
        super().__init__(0)
        self._values = list(values)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        return self._values.pop(0)
