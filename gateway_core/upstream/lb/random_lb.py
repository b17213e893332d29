"""Data path: weighted random (Envoy ``RANDOM``; also used for ``PASSTHROUGH``).

Each pick draws from the injected ``random.Random``: a uniform index for equal weights, otherwise
a point in ``[0, sum(weights))`` located by binary search over the cumulative weights (weights
3 and 1 give the first host draws 0..2 and the second draw 3).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.selection import all_equal, candidates


class RandomLoadBalancer:
    __slots__ = ("_cumulative", "_hosts", "_rng")

    def __init__(self, hosts: Sequence[Host], rng: random.Random) -> None:
        self._hosts = tuple(hosts)
        self._rng = rng
        self._cumulative = _cumulative_weights(self._hosts)

    def choose_host(self, ctx: LbContext) -> Host | None:
        """A random host by weight, drawn among the hosts not in ``ctx.excluded`` when any."""
        if not self._hosts:
            return None
        if ctx.excluded:
            remaining = candidates(self._hosts, ctx.excluded)
            if len(remaining) < len(self._hosts):
                return self._draw(remaining, _cumulative_weights(remaining))
        return self._draw(self._hosts, self._cumulative)

    def _draw(self, hosts: Sequence[Host], cumulative: list[int] | None) -> Host:
        if cumulative is None:
            return hosts[self._rng.randrange(len(hosts))]
        point = self._rng.randrange(cumulative[-1])
        return hosts[bisect.bisect_right(cumulative, point)]


def _cumulative_weights(hosts: Sequence[Host]) -> list[int] | None:
    """Running weight sums, or None when all weights are equal (a uniform draw suffices)."""
    if all_equal(h.weight for h in hosts):
        return None
    return list(itertools.accumulate(h.weight for h in hosts))
