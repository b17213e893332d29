"""Test doubles for the data path's callback objects: transports, pools, loops, sinks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


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

    def cancel(self, waiter: Any) -> None:
        self.cancelled.append(waiter)


class FakeTimer:
    def __init__(self, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert not self.cancelled
        self.callback(*self.args)


class FakeLoop:
    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> FakeTimer:
        timer = FakeTimer(callback, args)
        self.timers.append(timer)
        return timer


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
