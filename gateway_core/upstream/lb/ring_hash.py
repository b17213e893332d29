"""Data path: ketama-style consistent hash ring (Istio ``RING_HASH``, its default hashing).

Built once from an immutable host tuple. Host ``i`` owns the points hashed from
``"<address>:<port>_0"``, ``"..._1"``, ... -- ``round(K * w_i / w_min)`` of them (at least one),
where ``K`` is 160 points per lightest host (libketama's count) raised to
``ceil(minimum_ring_size / sum(w / w_min))`` when the ring would otherwise be smaller than
``minimum_ring_size``, and lowered to keep the ring under Envoy's 8M cap. A host's point count
depends only on its own relative weight, so adding or removing a host adds or removes exactly
that host's points and only ~1/N of the keys move (Istio: "affinity lost for 1/backends").
Envoy instead rescales every host to ``ceil(minimum_ring_size / N)`` points, which shifts all
hosts' points when N changes (about 2/N of the keys move at N = 10); as our hash function differs
from Envoy's xxHash anyway, key placement cannot match Envoy's and the stable sizing wins.
Example: 10 equal hosts -> 160 points each, 1600 in all; 4 equal hosts -> 256 each (minimum 1024).
Only clusters small enough for the minimum to apply (fewer than 7 equal hosts by default) see
their point counts change with N.

Lookup: the first point at or after the request hash (wrapping to the start). ``ctx.attempt``
moves that many points clockwise (Envoy ``chooseHost(hash, attempt)``), and hosts in
``ctx.excluded`` are skipped by walking on clockwise.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.hash_key import hash64

DEFAULT_MIN_RING_SIZE = 1024
MAX_RING_SIZE = 8 * 1024 * 1024
POINTS_PER_HOST = 160


class RingHashLoadBalancer:
    __slots__ = ("_hashes", "_hosts", "_owners", "_rng")

    def __init__(
        self,
        hosts: Sequence[Host],
        rng: random.Random,
        *,
        minimum_ring_size: int = DEFAULT_MIN_RING_SIZE,
        weights: Sequence[float] | None = None,
    ) -> None:
        """``weights`` overrides ``Host.weight`` (locality-weighted hashing folds weights in)."""
        self._hosts = tuple(hosts)
        self._rng = rng
        raw = list(weights) if weights is not None else [float(h.weight) for h in self._hosts]
        points = build_ring(self._hosts, raw, minimum_ring_size or DEFAULT_MIN_RING_SIZE)
        self._hashes = [p[0] for p in points]
        self._owners = [p[1] for p in points]

    @property
    def ring_size(self) -> int:
        return len(self._hashes)

    def choose_host(self, ctx: LbContext) -> Host | None:
        """The owner of the first ring point at/after the hash (random hash when there is none)."""
        size = len(self._hashes)
        if not size:
            return None
        key = ctx.hash_key if ctx.hash_key is not None else self._rng.getrandbits(64)
        index = bisect.bisect_left(self._hashes, key)
        if index == size:
            index = 0
        if ctx.attempt:
            index = (index + ctx.attempt) % size
        first = self._hosts[self._owners[index]]
        excluded = ctx.excluded
        if not excluded or first.key not in excluded:
            return first
        if all(h.key in excluded for h in self._hosts):
            return first
        for step in range(1, size):
            host = self._hosts[self._owners[(index + step) % size]]
            if host.key not in excluded:
                return host
        return first


def build_ring(
    hosts: Sequence[Host], weights: Sequence[float], minimum_ring_size: int
) -> list[tuple[int, int]]:
    """Sorted ``(point hash, host index)`` pairs; hosts with weight <= 0 get no points."""
    positive = [w for w in weights if w > 0]
    if not hosts or not positive:
        return []
    lightest = min(positive)
    relative = [w / lightest if w > 0 else 0.0 for w in weights]
    units = sum(relative)
    per_unit = max(float(POINTS_PER_HOST), math.ceil(minimum_ring_size / units))
    per_unit = min(per_unit, MAX_RING_SIZE / units)
    points: list[tuple[int, int]] = []
    for index, (host, share) in enumerate(zip(hosts, relative, strict=True)):
        if share <= 0:
            continue
        prefix = f"{host.address}:{host.port}_".encode("latin-1")
        count = max(1, round(per_unit * share))
        points.extend((hash64(prefix + str(i).encode("ascii")), index) for i in range(count))
    points.sort()
    return points
