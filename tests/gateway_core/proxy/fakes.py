"""Test doubles for the data path's callback objects: transports, pools, loops, sinks."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from gateway_core.observability.metrics import GatewayMetrics
from gateway_core.settings import GatewaySettings
from gateway_core.upstream.cluster import ClusterStats
from gateway_core.upstream.host import Host

SETTINGS = GatewaySettings(
    tier="tier2", config_paths=(), header_timeout=10.0, idle_timeout=60.0, stream_idle_timeout=300.0
)


class FakeRuntime:
    """The process as a client connection sees it (``GatewayContext``): real settings and
    metrics, a snapshot, no live clusters unless a subclass adds them."""

    def __init__(self, snapshot: Any) -> None:
        self.settings = SETTINGS
        self.metrics = GatewayMetrics(CollectorRegistry(), "test")
        self.rng = random.Random(1)
        self.sticky_key = b"k" * 32
        self.tracer: Any = None
        self.health_path = b"/healthz/ready"
        self.ready = True
        self.draining = False
        self.snapshot = snapshot
        self.clusters: dict[str, Any] = {}
        self.connections: set[Any] = set()
        self.observed: list[int] = []
        self.flags: list[str] = []

    def observe(self, ex: Any, now: float) -> None:
        self.observed.append(ex.status)
        self.flags += [f.value for f in ex.flags]


class FakeListener:
    """The listener a connection arrived on (``ListenerContext``): plaintext, port 8080."""

    port = 8080
    default_authority = b"gw:8080"
    tls = None

    def __init__(self, route_table: str) -> None:
        self.default_route_table = route_table


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.written += part

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int) -> None:
        return

    def get_extra_info(self, name: str) -> None:
        return None


class FakePool:
    def __init__(self, reuse: bool = True) -> None:
        self.cluster = SimpleNamespace(stats=ClusterStats(), spec=SimpleNamespace(key="c"))
        self.host = Host("10.0.0.1", 80)
        self.reuse = reuse
        self.released: list[Any] = []
        self.closed: list[Any] = []
        self.cancelled: list[Any] = []

    def may_reuse(self, conn: Any) -> bool:
        return self.reuse

    def release(self, conn: Any) -> None:
        self.released.append(conn)

    def on_closed(self, conn: Any) -> None:
        self.closed.append(conn)

    def on_extra_data(self) -> None:
        self.cluster.stats.extra_data += 1

    def cancel(self, waiter: Any) -> None:
        self.cancelled.append(waiter)


class FakeTimer:
    def __init__(self, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False
        self.fired = False
        self.when = 0.0

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled
        self.fired = True
        self.callback(*self.args)


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> FakeTimer:
        return self.call_at(self.now + delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., None], *args: Any) -> FakeTimer:
        timer = FakeTimer(callback, args)
        timer.when = when
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock and fire every timer due by then, in time order (timers a callback
        arms are fired too when due)."""
        self.now += seconds
        while True:
            due = [t for t in self.timers if not t.cancelled and not t.fired and t.when <= self.now]
            if not due:
                return
            timer = min(due, key=lambda t: t.when)
            timer.fire()


class Recorder:
    """Records every method called on it, with arguments, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def names(self, *, flushes: bool = False) -> list[str]:
        return [name for name, _ in self.calls if flushes or name != "flush"]

    def events(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Calls without the end-of-read ``flush`` notifications."""
        return [call for call in self.calls if call[0] != "flush"]
