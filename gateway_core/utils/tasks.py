"""Shared: ``spawn`` names every background task and keeps a strong reference to it.

The event loop only keeps weak references to tasks, so a fire-and-forget task can be garbage
collected mid-flight; ``asyncio.create_task`` is banned by ruff in favour of this helper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
_log = logging.getLogger("gateway.tasks")
_RUNNING: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _RUNNING.add(task)
    task.add_done_callback(_done)
    return task


def background(coro: Coroutine[Any, Any, object], *, name: str) -> None:
    """Fire and forget (the task is still referenced until it ends and its failure logged)."""
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _RUNNING.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _log.error("task %s failed", task.get_name(), exc_info=task.exception())
