"""Data path: shared selection helpers for the load balancers (EDF scheduling, retry skipping).

``EdfScheduler`` is Envoy's earliest-deadline-first scheduler: every entry is queued with a
deadline ``now + step`` where ``step = 1 / weight``; ``pick`` takes the earliest deadline and
re-queues that entry one step later. Picks are therefore proportional to the weights and
interleaved instead of bursty. Equal deadlines go to the entry queued first.

Worked example, weights a=3 and b=1 with integer steps (``integer_steps``: lcm 3, steps 1 and 3):
deadlines a = 1, 2, 3, 4, ... and b = 3, 6, ...; the picks are ``a a b a a a b a a a b ...``,
so every 4 consecutive picks in the steady state hold exactly 3 a and 1 b, and a never runs
more than 3 times in a row.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

from gateway_core.upstream.host import Host, HostKey

T = TypeVar("T")


class EdfScheduler(Generic[T]):
    """Weighted picks by earliest deadline. Steps may be ints (exact) or floats."""

    __slots__ = ("_heap", "_items", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, float]] = []
        self._items: list[T] = []
        self._order = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: T, step: float, now: float = 0) -> None:
        """Queue ``item`` with deadline ``now + step`` (step = 1/weight, must be > 0)."""
        self._items.append(item)
        self._push(now + step, len(self._items) - 1, step)

    def pick(
        self,
        next_step: Callable[[T], float] | None = None,
        accept: Callable[[T], bool] | None = None,
    ) -> T | None:
        """The item with the earliest deadline, re-queued one step later.

        ``next_step`` recomputes the step at pick time (Envoy ``pickAndAdd``), for weights that
        change between picks such as least-request's ``weight / (active + 1)``. ``accept``
        passes over rejected items without consuming their turn (retries skip tried hosts);
        when it rejects everything the plain earliest item is picked.
        """
        heap = self._heap
        if not heap:
            return None
        entry = heapq.heappop(heap)
        if accept is not None and not accept(self._items[entry[2]]):
            rejected = [entry]
            while heap and not accept(self._items[heap[0][2]]):
                rejected.append(heapq.heappop(heap))
            if heap:
                entry = heapq.heappop(heap)
                for other in rejected:
                    heapq.heappush(heap, other)
            else:
                for other in rejected[1:]:
                    heapq.heappush(heap, other)
        deadline, _, index, step = entry
        item = self._items[index]
        if next_step is not None:
            step = next_step(item)
        self._push(deadline + step, index, step)
        return item

    def _push(self, deadline: float, index: int, step: float) -> None:
        heapq.heappush(self._heap, (deadline, self._order, index, step))
        self._order += 1


def integer_steps(weights: Sequence[int]) -> list[int]:
    """Exact EDF steps for integer weights: ``lcm(weights) // weight`` (all weights >= 1)."""
    common = math.lcm(*weights)
    return [common // w for w in weights]


def all_equal(values: Iterable[int]) -> bool:
    it = iter(values)
    first = next(it, None)
    return all(v == first for v in it)


def pick_avoiding(
    pick: Callable[[], Host | None], excluded: frozenset[HostKey], attempts: int
) -> Host | None:
    """Call ``pick`` up to ``attempts`` times until it returns a host not in ``excluded``.

    When every attempt lands on an excluded host the first pick is returned: like Envoy after
    ``host_selection_retry_max_attempts``, a retry to an already tried host beats no host.
    """
    first = pick()
    if first is None or not excluded or first.key not in excluded:
        return first
    for _ in range(attempts - 1):
        host = pick()
        if host is not None and host.key not in excluded:
            return host
    return first


def candidates(hosts: Sequence[Host], excluded: frozenset[HostKey]) -> Sequence[Host]:
    """Hosts not yet tried by this request, or all of them when every host was tried."""
    if not excluded:
        return hosts
    remaining = [h for h in hosts if h.key not in excluded]
    return remaining or hosts
