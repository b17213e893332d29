"""Data path: consistent-hash tables (Maglev, ring hash) built off the event loop, swapped in.

A Maglev table of 65,537 slots costs about 50 ms of Python, and the priority balancer needs a
new one on every membership or health change of a hashing cluster. With an ``Offload`` (a
worker thread: ``thread_offload``) the table is built there. Until it arrives, the level keeps
serving from its previous table through ``StaleTable``: a key lands where it did, and a key
whose host is no longer a candidate moves on along the table's own retry walk (so about 1/N of
keys move, as they will with the new table), never to a host that left. The finished table is
swapped in by one ``update`` on the loop. Envoy does the same: its main thread builds the
thread-aware balancers and posts them to the workers, which keep the old ones meanwhile.

Without an offload (unit tests, tools), or for a level that has no table yet (a cluster's first
one, built when the control path creates it), the build runs where it is asked for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext, LoadBalancer

_log = logging.getLogger("gateway.lb")

Built = Callable[[LoadBalancer | BaseException], None]
Offload = Callable[[Callable[[], LoadBalancer], Built], None]
"""``offload(build, done)``: run ``build`` elsewhere, then call ``done`` with its result (or
its exception) on the event loop."""


class StaleTable:
    """A level's previous hash table, serving while its successor is built."""

    __slots__ = ("_allowed", "_candidates", "_gone", "table")

    def __init__(
        self, table: LoadBalancer, table_hosts: Sequence[Host], candidates: Sequence[Host]
    ) -> None:
        self.table = table
        self._candidates = tuple(candidates)
        self._allowed = frozenset(h.key for h in self._candidates)
        self._gone = frozenset(h.key for h in table_hosts if h.key not in self._allowed)

    def choose_host(self, ctx: LbContext) -> Host | None:
        host = self.table.choose_host(ctx)
        if host is None or host.key in self._allowed:
            return host
        # Walk on as a retry would, treating the hosts that left as already tried.
        moved = self.table.choose_host(
            LbContext(ctx.hash_key, ctx.attempt, ctx.excluded | self._gone)
        )
        if moved is not None and moved.key in self._allowed:
            return moved
        if not self._candidates:  # every host of the old table left; the new ones wait
            return None
        key = ctx.hash_key if ctx.hash_key is not None else 0
        return self._candidates[key % len(self._candidates)]


def thread_offload(executor: Executor | None = None) -> Offload:
    """An ``Offload`` running builds on one worker thread (so they never run in parallel with
    each other) and delivering results on the calling event loop."""
    pool = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="lb-tables")

    def offload(build: Callable[[], LoadBalancer], done: Built) -> None:
        future = asyncio.get_running_loop().run_in_executor(pool, build)

        def deliver(f: asyncio.Future[LoadBalancer]) -> None:
            if f.cancelled():
                return
            error = f.exception()
            if error is not None:
                _log.error("building a hash table failed: %r", error)
                done(error)
            else:
                done(f.result())

        future.add_done_callback(deliver)

    return offload


TableKey = tuple[object, ...]


class TableBuilds:
    """The hash tables of one priority balancer: the current one per level, the ones being
    built, the ones that arrived and wait for the next ``update``."""

    __slots__ = ("_offload", "_on_ready", "_pending", "_ready", "current")

    def __init__(self, offload: Offload, on_ready: Callable[[], None]) -> None:
        self._offload = offload
        self._on_ready = on_ready
        self._pending: set[TableKey] = set()
        self._ready: dict[TableKey, LoadBalancer] = {}
        self.current: dict[int, tuple[Sequence[Host], LoadBalancer]] = {}
        """Per priority level: the candidates and the table it serves from."""

    def take(self, key: TableKey) -> LoadBalancer | None:
        """A table for ``key`` that arrived from the builder, if any."""
        return self._ready.pop(key, None)

    def interim(
        self,
        level: int,
        key: TableKey,
        candidates: Sequence[Host],
        build: Callable[[], LoadBalancer],
    ) -> LoadBalancer | None:
        """Start building ``key``'s table elsewhere (once) and serve ``level`` from its
        previous table meanwhile; None when the level has none (the caller builds in place)."""
        previous = self.current.get(level)
        if previous is None:
            return None
        if key not in self._pending:
            self._pending.add(key)
            self._offload(build, lambda result: self._arrived(key, result))
        return StaleTable(previous[1], previous[0], candidates)

    def _arrived(self, key: TableKey, result: LoadBalancer | BaseException) -> None:
        self._pending.discard(key)
        if isinstance(result, BaseException):
            return  # logged by the offload; the stale table serves until the next change
        self._ready[key] = result
        self._on_ready()
        self._ready.clear()  # tables for candidate sets that changed meanwhile are not needed
