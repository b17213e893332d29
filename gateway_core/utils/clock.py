"""Shared: the injected clock (Envoy ``TimeSource``). Algorithms never call ``time`` directly."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards."""
        ...


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
