"""Shared: the injected clock (Envoy ``TimeSource``). Algorithms never call ``time`` directly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """The part of the event loop that timer-driven state machines use (the running loop in
    production, a fake loop in tests): its clock and one-shot timers."""

    def time(self) -> float: ...
    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...


class MonotonicClock:
    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """Test clock: time moves only when ``advance`` is called."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
