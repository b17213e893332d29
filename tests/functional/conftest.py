"""Functional tests run on both event loops: asyncio's and uvloop (the one production uses)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # The large-body test runs its gateway as a subprocess (on uvloop already).
    if item.path.name == "test_large_bodies.py":
        return {"asyncio": LOOPS["asyncio"]}
    return LOOPS
