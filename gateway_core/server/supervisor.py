"""Control path: ``Supervisor``, the control plane of ``run --workers N`` (N > 1).

The supervisor is a ``Gateway`` that serves no traffic. It loads, validates and compiles the
configuration once; reserves the listener ports (``SO_REUSEPORT``, never listening); runs DNS
discovery, active health checks, outlier detection, the configuration and certificate watchers
and the admin endpoint; and starts N worker processes, each with one end of a socketpair
(``channel.py``), restarting one that dies.

Workers are forked by multiprocessing's *fork server*, a process started once that has imported
the gateway (``set_forkserver_preload``): a worker then starts in milliseconds, where a fresh
interpreter spends about 0.6 s of CPU importing -- seconds of wall time on a busy node, too slow
for a crashed worker to be back within 2 s. The fork server forks from a process with no event
loop and no threads (unlike forking the supervisor itself), and a forked worker shares the
imported code's memory pages with its siblings.

A version goes live in two steps: the supervisor accepts it (a rejected configuration is never
sent), then sends the snapshot it compiled, pickled once, to every worker, which loads it and
acknowledges (a worker never compiles: it does not even import the configuration models).
Only when every live worker has acknowledged does the supervisor publish it, so ``/ready`` and
``/config_dump`` report a version that every worker serves. A worker that reports an error
rolls everyone back to the previous version and the reload is rejected; one that does not
answer in ``ROLLOUT_TIMEOUT`` is killed and restarted (it starts on the new version).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import multiprocessing
import os
import socket
import time
from multiprocessing import forkserver
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from gateway_core.observability.merge import MergedCollector, Retired
from gateway_core.pipeline import BuildResult
from gateway_core.server.app import Gateway
from gateway_core.server.channel import (
    Applied,
    Apply,
    Channel,
    Collect,
    Drain,
    Families,
    Hello,
    Hosts,
    Outcomes,
    ReloadCertificates,
    pack_snapshot,
)
from gateway_core.server.state import RolloutError
from gateway_core.server.worker import worker_main
from gateway_core.server.workers import WorkerHandle, WorkerStats, exited
from gateway_core.settings import GatewaySettings
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.shared_hosts import host_rows, replay_outcomes
from gateway_core.utils.tasks import background, spawn

_log = logging.getLogger("gateway.supervisor")

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(["gateway_core.server.worker"])

ROLLOUT_TIMEOUT = 30.0
COLLECT_TIMEOUT = 2.0


class Supervisor(Gateway):
    def __init__(self, settings: GatewaySettings) -> None:
        workers = settings.workers
        super().__init__(settings, reserve_ports=True, on_hosts_change=self._hosts_changed)
        self.workers = [WorkerHandle(i) for i in range(workers)]
        self.worker_settings = dataclasses.replace(
            settings, sticky_secret=self.runtime.sticky_key, workers=workers
        )
        self.rollout = self._rollout
        self.on_certificates = lambda: self._broadcast(ReloadCertificates())
        self.runtime.workers_info = self.workers_info
        self._target: Apply | None = None
        self._pending: dict[str, Cluster] = {}
        self._dirty: dict[str, Cluster] = {}
        self._changed = asyncio.Event()
        self._stopping = False
        self._requests = itertools.count(1)
        self._retired = Retired()
        own = self.registry
        self.registry = CollectorRegistry()
        own.register(WorkerStats(settings.tier, lambda: self.workers))
        self.registry.register(MergedCollector(own, self._worker_families))
        self.admin_hooks.append(self._admin_hook)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> bool:
        # The fork server imports the gateway once (seconds on a busy node): off the loop.
        await asyncio.get_running_loop().run_in_executor(None, forkserver.ensure_running)
        for handle in self.workers:
            await self._spawn(handle)
        started = await super().start()
        if not started:
            self._stopping = True
        else:
            self._update_ready()  # no worker may have survived the start
        return started

    async def _spawn(self, handle: WorkerHandle) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        seed = self.settings.rng_seed
        hello = Hello(
            handle.index,
            len(self.workers),
            dataclasses.replace(
                self.worker_settings, rng_seed=None if seed is None else seed + handle.index
            ),
        )
        proc = _CONTEXT.Process(
            target=worker_main,
            args=(child, os.getpid(), handle.index),
            name=f"{self.settings.tier}-worker-{handle.index}",
            daemon=False,
        )
        try:
            proc.start()  # milliseconds: the fork server is running (``start``)
        finally:
            child.close()
        handle.proc = proc
        handle.started = time.monotonic()
        handle.version = handle.error = ""
        channel = handle.channel = await Channel.open(parent)
        channel.send(hello)
        if self._target is not None:
            channel.send(self._target)
        background(self._read(handle, channel), name=f"worker {handle.index} channel")
        background(self._watch(handle, proc), name=f"worker {handle.index} exit")
        _log.info("worker %d started (pid %s)", handle.index, proc.pid)

    async def _watch(self, handle: WorkerHandle, proc: BaseProcess) -> None:
        code = await exited(proc)
        if handle.channel is not None:
            handle.channel.close()
            handle.channel = None
        self._retired.add(handle.families)
        handle.families = []
        for future in handle.collects.values():
            future.cancel()
        handle.collects.clear()
        self._changed.set()
        self._update_ready()
        if self._stopping:
            _log.info("worker %d exited (%s)", handle.index, code)
            return
        delay = handle.restart_delay(time.monotonic())
        _log.error("worker %d (pid %s) exited with %s; restarting in %.1fs",
                   handle.index, proc.pid, code, delay)  # fmt: skip
        await asyncio.sleep(delay)
        if not self._stopping:
            handle.restarts += 1
            await self._spawn(handle)

    async def _read(self, handle: WorkerHandle, channel: Channel) -> None:
        while (message := await channel.receive()) is not None:
            if isinstance(message, Outcomes):
                replay_outcomes(self._pending or self.runtime.clusters, message.batch)
            elif isinstance(message, Applied):
                handle.version, handle.error = message.version, message.error
                if message.error:
                    _log.error("worker %d cannot serve %s: %s",
                               handle.index, message.version, message.error)  # fmt: skip
                self._changed.set()
                self._update_ready()
            elif isinstance(message, Families):
                if message.request == 0:  # the worker's periodic push
                    handle.families = message.families
                future = handle.collects.pop(message.request, None)
                if future is not None and not future.done():
                    future.set_result(message.families)

    def _update_ready(self) -> None:
        """Ready while the configuration is live and at least one worker serves it (or the
        version being rolled out, which it serves once the rollout publishes it)."""
        published = self.runtime.snapshot.version
        if published:
            target = self._target.version if self._target is not None else published
            self.runtime.ready = any(
                h.alive and h.version in (published, target) for h in self.workers
            )

    # -- rollout --------------------------------------------------------------------------------
    async def _rollout(self, result: BuildResult, clusters: dict[str, Cluster]) -> None:
        assert result.snapshot is not None
        version = result.snapshot.version
        try:  # in a thread: a large snapshot takes tens of milliseconds to pickle
            packed = await asyncio.get_running_loop().run_in_executor(
                None, pack_snapshot, result.snapshot
            )
        except Exception as exc:  # the snapshot holds an object that cannot be sent
            raise RolloutError(f"cannot hand version {version} to the workers: {exc}") from exc
        message = Apply(version, packed, {k: host_rows(c.hosts) for k, c in clusters.items()})
        previous, self._target, self._pending = self._target, message, clusters
        try:
            self._broadcast(message)
            failed = await self._await_version(version)
        finally:
            self._pending = {}
        if failed:
            self._target = previous
            if previous is not None:
                self._broadcast(previous)
            raise RolloutError(f"version {version} rejected by a worker: {failed}")

    async def _await_version(self, version: str) -> str:
        """Wait until every live worker serves ``version``; the first worker error, if any."""
        deadline = time.monotonic() + ROLLOUT_TIMEOUT
        while True:
            self._changed.clear()
            for handle in self.workers:
                if handle.alive and handle.version == version and handle.error:
                    return handle.error
            waiting = [h for h in self.workers if h.alive and h.version != version]
            if not waiting:
                return ""
            left = deadline - time.monotonic()
            if left <= 0:
                for handle in waiting:
                    _log.error("worker %d did not take version %s in %.0fs; restarting it",
                               handle.index, version, ROLLOUT_TIMEOUT)  # fmt: skip
                    assert handle.proc is not None
                    handle.proc.kill()
                return ""
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                continue

    def _broadcast(self, message: object) -> None:
        for handle in self.workers:
            if handle.channel is not None:
                handle.channel.send(message)

    def _hosts_changed(self, cluster: Cluster) -> None:
        key = cluster.spec.key
        if self.runtime.clusters.get(key) is not cluster and self._pending.get(key) is not cluster:
            return  # a retired cluster finishing its drain
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush_hosts)
        self._dirty[key] = cluster

    def _flush_hosts(self) -> None:
        dirty, self._dirty = self._dirty, {}
        if dirty:
            self._broadcast(Hosts({key: host_rows(c.hosts) for key, c in dirty.items()}))

    # -- admin ------------------------------------------------------------------------------------
    def workers_info(self) -> list[dict[str, object]]:
        return [
            {
                "worker": h.index,
                "pid": h.proc.pid if h.alive and h.proc is not None else None,
                "version": h.version if h.alive else None,
                "restarts": h.restarts,
                **({"error": h.error} if h.error else {}),
            }
            for h in self.workers
        ]

    def _admin_hook(self, app: Any) -> None:
        from aiohttp import web

        @web.middleware
        async def refresh_worker_stats(request: web.Request, handler: Any) -> Any:
            if request.path == "/stats/prometheus":
                await self.collect_workers()
            return await handler(request)

        app.middlewares.append(refresh_worker_stats)

    async def collect_workers(self) -> None:
        """Ask every live worker for its metric families (a silent one keeps its last ones)."""
        loop = asyncio.get_running_loop()
        asks: list[tuple[WorkerHandle, asyncio.Future[list[Metric]]]] = []
        for handle in self.workers:
            if handle.channel is None:
                continue
            request = next(self._requests)
            future: asyncio.Future[list[Metric]] = loop.create_future()
            handle.collects[request] = future
            handle.channel.send(Collect(request))
            asks.append((handle, future))
        if asks:
            await asyncio.wait([f for _, f in asks], timeout=COLLECT_TIMEOUT)
        for handle, future in asks:
            if future.done() and not future.cancelled():
                handle.families = future.result()

    def _worker_families(self) -> list[list[Metric]]:
        live = [h.families for h in self.workers if h.alive]
        return [*live, self._retired.families()]

    # -- drain and stop ---------------------------------------------------------------------------
    def begin_drain(self, propagation: float | None = None) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.runtime.draining = True
        wait = self.settings.drain_propagation if propagation is None else propagation
        _log.info("draining %d workers", len(self.workers))
        self._broadcast(Drain(wait))
        background(self._await_workers(wait + self.settings.drain_deadline + 5.0), name="drain")

    async def _await_workers(self, bound: float) -> None:
        procs = [h.proc for h in self.workers if h.alive and h.proc is not None]
        if procs:
            waits = [spawn(exited(p), name="worker exit") for p in procs]
            await asyncio.wait(waits, timeout=bound)
            for proc in procs:
                if proc.exitcode is None:
                    proc.kill()
        self.request_stop()

    async def close(self) -> None:
        self._stopping = True
        for handle in self.workers:
            if handle.alive and handle.proc is not None:
                handle.proc.kill()
                await exited(handle.proc)
        self.listeners.close_reservations()
        await super().close()
