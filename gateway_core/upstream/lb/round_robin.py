"""Data path: weighted round robin (Envoy ``ROUND_ROBIN``).

Equal weights rotate through the hosts; unequal weights use the EDF scheduler with exact integer
steps, so weights 3:1 give exactly 300/100 picks in any 400 consecutive steady-state picks and the
heavy host never runs more than ``ceil(3 / 1) = 3`` times in a row. Like Envoy, the starting
position is random (``rng``) so that gateways restarted together do not all hit the same host first.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.selection import (
    EdfScheduler,
    all_equal,
    integer_steps,
    pick_avoiding,
)


class RoundRobinLoadBalancer:
    """Built over a fixed host tuple; rebuild it when the candidate set changes."""

    __slots__ = ("_edf", "_hosts", "_index")

    def __init__(self, hosts: Sequence[Host], rng: random.Random) -> None:
        self._hosts = tuple(hosts)
        count = len(self._hosts)
        self._index = rng.randrange(count) if count else 0
        self._edf: EdfScheduler[Host] | None = None
        if count > 1 and not all_equal(h.weight for h in self._hosts):
            edf: EdfScheduler[Host] = EdfScheduler()
            for host, step in zip(
                self._hosts, integer_steps([h.weight for h in self._hosts]), strict=True
            ):
                edf.add(host, step)
            for _ in range(self._index):
                edf.pick()
            self._edf = edf

    def choose_host(self, ctx: LbContext) -> Host | None:
        """The next host in the weighted rotation; hosts in ``ctx.excluded`` are skipped."""
        hosts = self._hosts
        if not hosts:
            return None
        excluded = ctx.excluded
        if self._edf is not None:
            if not excluded:
                return self._edf.pick()
            return self._edf.pick(accept=lambda h: h.key not in excluded)
        if not excluded:
            host = hosts[self._index % len(hosts)]  # ``_next``, inlined for the common case
            self._index += 1
            return host
        return pick_avoiding(self._next, excluded, len(hosts))

    def sole_host(self) -> Host | None:
        """The host every pick returns when there is only one (its position never matters)."""
        return self._hosts[0] if len(self._hosts) == 1 else None

    def _next(self) -> Host | None:
        host = self._hosts[self._index % len(self._hosts)]
        self._index += 1
        return host
