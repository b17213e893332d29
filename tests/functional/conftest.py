"""Functional tests run on both event loops: asyncio's and uvloop (the one production uses).
Shared fixtures: ``grpc_pods`` (real grpcio pods on 127.0.0.1, stopped at the end)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
import uvloop

from tests.functional.grpc_pods import GrpcPod, start_pod

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    # These tests run their gateways as subprocesses (on uvloop already).
    if item.path.name in (
        "test_large_bodies.py",
        "test_workers.py",
        "test_workers_shared_state.py",
    ):
        return {"asyncio": LOOPS["asyncio"]}
    return LOOPS


@pytest.fixture
async def grpc_pods() -> AsyncIterator[Callable[[int], Any]]:
    """``start(n)``: n gRPC pods named pod0..pod{n-1}; every one is stopped at the end."""
    started: list[GrpcPod] = []

    async def start(n: int) -> list[GrpcPod]:
        pods = [await start_pod(f"pod{i}") for i in range(n)]
        started.extend(pods)
        return pods

    yield start
    for pod in started:
        await pod.server.stop(0)
