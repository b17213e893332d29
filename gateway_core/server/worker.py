"""Control path: one worker process of ``run --workers N`` (``worker_main``, which the
``Supervisor`` runs in a process forked by multiprocessing's fork server).

A worker is a ``Gateway`` whose listeners use ``SO_REUSEPORT`` (the kernel spreads connections
over the workers), whose clusters follow the supervisor's hosts and health and report upstream
outcomes back in batches (``upstream/shared_hosts.py``), and which has no admin server, no file
watchers and no DNS or health-check tasks of its own. It serves the snapshots the supervisor
compiled and sends back what version it serves: it never loads configuration files or compiles
them, so the configuration models and the compiler are not even imported here.

It never outlives the supervisor: the end of the channel (the supervisor's end closes when it
dies, even by SIGKILL) makes it drain at once -- nothing can route traffic away from it any more
-- and exit; and ``PR_SET_PDEATHSIG`` has the kernel send it SIGTERM when its parent, the fork
server (which itself exits when the supervisor dies), goes.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import socket
import sys

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
    unpack_snapshot,
)
from gateway_core.settings import GatewaySettings
from gateway_core.tls.common import TlsConfigError
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.shared_hosts import (
    FLUSH_INTERVAL,
    OutcomeSink,
    apply_host_rows,
    share_limits,
)
from gateway_core.utils.tasks import background

_log = logging.getLogger("gateway.worker")
PR_SET_PDEATHSIG = 1
STATS_INTERVAL = 2.0


def die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the parent process dies."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Worker:
    def __init__(self, channel: Channel, hello: Hello, supervisor: int) -> None:
        self.channel = channel
        self.index = hello.index
        self.count = hello.workers
        self.supervisor = supervisor
        self.outcomes = OutcomeSink(self._flush_soon)
        self.gateway = Gateway(hello.settings, follower=self.outcomes)
        self._flush_pending = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._sigterm)
        # Ctrl-C reaches the whole process group: the supervisor decides, the workers follow.
        loop.add_signal_handler(signal.SIGINT, lambda: None)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        background(self._read(), name="supervisor channel")
        background(self._flush_every(), name="outcome batches")
        await self.gateway.wait_stopped()
        self._flush()
        await self.gateway.close()
        return 0

    def _sigterm(self) -> None:
        orphaned = os.getppid() != self.supervisor
        self.gateway.begin_drain(0.0 if orphaned else None)

    async def _read(self) -> None:
        gateway = self.gateway
        while (message := await self.channel.receive()) is not None:
            if isinstance(message, Apply):
                await self._apply(message)
            elif isinstance(message, Hosts):
                for key, rows in message.hosts.items():
                    cluster = gateway.runtime.clusters.get(key)
                    if cluster is not None:
                        apply_host_rows(cluster, rows)
            elif isinstance(message, Collect):
                families = list(gateway.registry.collect())
                self.channel.send(Families(message.request, families))
            elif isinstance(message, ReloadCertificates):
                gateway.listeners.reload_certificates()
                gateway.tls_store.refresh()
            elif isinstance(message, Drain):
                gateway.begin_drain(message.propagation)
        _log.warning("worker %d: the supervisor is gone; draining", self.index)
        gateway.begin_drain(0.0)

    async def _apply(self, message: Apply) -> None:
        runtime = self.gateway.runtime
        try:
            snapshot = await asyncio.get_running_loop().run_in_executor(
                None, unpack_snapshot, message.snapshot
            )
        except Exception as exc:  # unpickling runs the snapshot's own rebuilders (JWT keys)
            self.channel.send(Applied(message.version, f"cannot load the snapshot: {exc!r}"))
            return
        if snapshot.version != message.version:
            error = f"the snapshot is version {snapshot.version}, expected {message.version}"
            self.channel.send(Applied(message.version, error))
            return

        async def adopt_hosts(clusters: dict[str, Cluster]) -> None:
            for key, rows in message.hosts.items():
                if key in clusters:
                    apply_host_rows(clusters[key], rows)

        try:
            await runtime.apply(share_limits(snapshot, self.count), before_publish=adopt_hosts)
        except (OSError, TlsConfigError) as exc:
            self.channel.send(Applied(message.version, str(exc)))
            return
        runtime.ready = True
        self.channel.send(Applied(message.version))
        _return_free_memory()

    def _flush_soon(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        batch = self.outcomes.drain()
        if batch:
            self.channel.send(Outcomes(batch))

    async def _flush_every(self) -> None:
        """Outcome batches every ``FLUSH_INTERVAL``; metric families every ``STATS_INTERVAL``
        unasked, so a worker that is killed loses at most that much of its counts."""
        ticks = 0
        every = round(STATS_INTERVAL / FLUSH_INTERVAL)
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            if self.outcomes.dirty:
                self._flush()
            ticks += 1
            if ticks % every == 0:
                self.channel.send(Families(0, list(self.gateway.registry.collect())))


def _return_free_memory() -> None:
    """Hand the heap that the previous snapshot left free back to the kernel (glibc keeps it
    otherwise, resident): a few MiB per worker after a large configuration."""
    gc.collect()
    if sys.platform == "linux":
        ctypes.CDLL(None).malloc_trim(0)


async def _main(sock: socket.socket, supervisor: int) -> int:
    channel = await Channel.open(sock)
    hello = await channel.receive()
    if not isinstance(hello, Hello):
        return 1  # the supervisor went away before the worker started
    settings: GatewaySettings = hello.settings
    logging.getLogger().setLevel(getattr(logging, settings.log_level.upper(), logging.INFO))
    return await Worker(channel, hello, supervisor).run()


def worker_main(sock: socket.socket, supervisor: int, index: int) -> None:
    """The worker process's entry point (its exit status is the gateway's)."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    import uvloop

    sys.exit(uvloop.run(_main(sock, supervisor)))
