"""Data path: ``IdBatch``, random ids handed out one at a time from batches made in one go.

A batch comes from one read of kernel randomness (``fill``), so an id costs a list pop. A
process forked after ids were drawn starts with an empty batch: it must not hand out the ids
left in its parent's.
"""

from __future__ import annotations

import os
from collections.abc import Callable


class IdBatch:
    __slots__ = ("_fill", "ids")

    def __init__(self, fill: Callable[[], list[bytes]]) -> None:
        """``fill`` makes the next batch; it must never return an empty list."""
        self._fill = fill
        self.ids: list[bytes] = []
        os.register_at_fork(after_in_child=self.forget)

    def forget(self) -> None:
        self.ids = []

    def next(self) -> bytes:
        ids = self.ids
        if not ids:
            ids = self.ids = self._fill()
        return ids.pop()
