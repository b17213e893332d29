"""Data path: least request (Envoy ``LEAST_REQUEST``, Istio's default algorithm).

Equal weights: power of two choices -- sample ``choice_count`` hosts at random (with
replacement) and keep the one with the fewest active requests; the first sample wins ties.
Unequal weights: EDF where a host's weight is recomputed at each of its picks as
``weight / (active_requests + 1) ** bias`` (bias 1.0), so a host with weight 2 and 3 requests in
flight ranks like a host with weight 0.5 and none.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb.selection import (
    EdfScheduler,
    all_equal,
    candidates,
)

DEFAULT_CHOICE_COUNT = 2
DEFAULT_ACTIVE_REQUEST_BIAS = 1.0


class LeastRequestLoadBalancer:
    """Reads ``Host.active_requests`` live at every pick; never blocks."""

    __slots__ = ("_bias", "_choice_count", "_edf", "_hosts", "_rng")

    def __init__(
        self,
        hosts: Sequence[Host],
        rng: random.Random,
        *,
        choice_count: int = DEFAULT_CHOICE_COUNT,
        active_request_bias: float = DEFAULT_ACTIVE_REQUEST_BIAS,
    ) -> None:
        self._hosts = tuple(hosts)
        self._rng = rng
        self._choice_count = max(1, choice_count)
        self._bias = active_request_bias
        self._edf: EdfScheduler[Host] | None = None
        if len(self._hosts) > 1 and not all_equal(h.weight for h in self._hosts):
            edf: EdfScheduler[Host] = EdfScheduler()
            for host in self._hosts:
                edf.add(host, self._step(host))
            self._edf = edf

    def choose_host(self, ctx: LbContext) -> Host | None:
        """The least loaded of the sampled hosts (P2C), or the EDF pick for unequal weights."""
        hosts = self._hosts
        if len(hosts) == 1:
            return hosts[0]  # also what sampling and candidates would give
        if not hosts:
            return None
        if self._edf is not None:
            excluded = ctx.excluded
            if not excluded:
                return self._edf.pick(self._step)
            return self._edf.pick(self._step, lambda h: h.key not in excluded)
        return self._pick_two(candidates(self._hosts, ctx.excluded))

    def sole_host(self) -> Host | None:
        """The host every pick returns when there is only one (picks then change nothing)."""
        return self._hosts[0] if len(self._hosts) == 1 else None

    def _pick_two(self, hosts: Sequence[Host]) -> Host:
        count = len(hosts)
        if count == 1:
            return hosts[0]
        best = hosts[self._rng.randrange(count)]
        for _ in range(self._choice_count - 1):
            sampled = hosts[self._rng.randrange(count)]
            if sampled.active_requests < best.active_requests:
                best = sampled
        return best

    def _step(self, host: Host) -> float:
        if self._bias == 1.0:
            return (host.active_requests + 1) / host.weight
        return float((host.active_requests + 1) ** self._bias / host.weight)
