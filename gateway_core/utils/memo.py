"""Data path: ``BoundedMemo``, the one memo for pure functions of values clients repeat.

Hosts, Connection values and access-log fields repeat across requests, so their derived forms
are computed once. Clients choose those values, so memory is bounded twice: at most
``entries`` values (then the memo starts over), and keys longer than ``max_key`` are computed
every time, never kept. A hit is a plain C-level dict lookup; only a miss runs Python
(``dict.__missing__``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K", bound=str | bytes)
V = TypeVar("V")

MAX_KEY = 512
"""Longest key kept: a DNS name (253) with a port fits twice."""


class BoundedMemo(dict[K, V]):
    """``memo[key]`` is ``compute(key)``, remembered while the bounds allow."""

    __slots__ = ("compute", "entries", "max_key")

    def __init__(
        self, compute: Callable[[K], V], *, entries: int = 1024, max_key: int = MAX_KEY
    ) -> None:
        super().__init__()
        self.compute = compute
        self.entries = entries
        self.max_key = max_key

    def __missing__(self, key: K) -> V:
        value = self.compute(key)
        if len(key) <= self.max_key:
            if len(self) >= self.entries:
                self.clear()
            self[key] = value
        return value
