"""Control path: the supervisor's worker slots (``WorkerHandle``), waiting for a worker process
to end without blocking the loop, and the supervisor's own metric families about them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway_core.server.channel import Channel

QUICK_EXIT = 5.0
"""A worker that dies sooner than this after starting counts towards the restart back-off."""
FIRST_BACKOFF = 0.2
MAX_BACKOFF = 10.0


class WorkerHandle:
    """One worker slot: the process now running in it, and what it acknowledged."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: BaseProcess | None = None
        self.channel: Channel | None = None
        self.version = ""
        self.error = ""
        self.started = 0.0
        self.restarts = 0
        self.quick_exits = 0
        self.families: list[Metric] = []
        self.collects: dict[int, asyncio.Future[list[Metric]]] = {}

    def restart_delay(self, now: float) -> float:
        """Seconds to wait before replacing the worker that just exited: none for one that
        ran a while, or for a first quick exit; then 0.2 s, doubling up to 10 s, while it keeps
        dying within ``QUICK_EXIT`` of starting."""
        self.quick_exits = self.quick_exits + 1 if now - self.started < QUICK_EXIT else 0
        if self.quick_exits <= 1:
            return 0.0
        return min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** (self.quick_exits - 2))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.exitcode is None


async def exited(proc: BaseProcess) -> int | None:
    """Wait for ``proc`` to end (its sentinel fd becomes readable), without blocking the loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    sentinel = proc.sentinel

    def ready() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(sentinel, ready)
    try:
        await done
    finally:
        loop.remove_reader(sentinel)
    proc.join(0)
    return proc.exitcode


class WorkerStats(Collector):
    """The supervisor's own families: how many workers run, and how often they were replaced."""

    def __init__(self, tier: str, handles: Callable[[], Sequence[WorkerHandle]]) -> None:
        self._tier = tier
        self._handles = handles

    def collect(self) -> Iterator[Metric]:
        tier = self._tier
        handles = self._handles()
        workers = GaugeMetricFamily(
            "gateway_workers", "Worker processes by state", labels=["tier", "state"]
        )
        workers.add_metric([tier, "configured"], len(handles))
        workers.add_metric([tier, "running"], sum(1 for h in handles if h.alive))
        yield workers
        restarts = CounterMetricFamily(
            "gateway_worker_restarts", "Worker processes restarted after they died", labels=["tier"]
        )
        restarts.add_metric([tier], sum(h.restarts for h in handles))
        yield restarts
