"""Shared fixtures: free loopback ports, in-process gateways, demo pods and config files."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway_lab.demo_pod import PodConfig, bound_port, start_pod
from tests.helpers import GatewayHarness, PodHandle


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def port_factory() -> Callable[[], int]:
    return free_port


@pytest.fixture
async def pods() -> AsyncIterator[Callable[..., object]]:
    """Start demo pods on 127.0.0.1 with port 0; all are stopped at the end."""
    runners = []

    async def start(role: str = "echo", **kwargs: object) -> PodHandle:
        runner = await start_pod(PodConfig(role=role, **kwargs))  # type: ignore[arg-type]
        runners.append(runner)
        return PodHandle(runner, bound_port(runner))

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    """Run gateways in this event loop from YAML text; closed at the end."""
    harnesses: list[GatewayHarness] = []

    async def start(yaml_text: str, **settings: object) -> GatewayHarness:
        harness = GatewayHarness(tmp_path / f"gw{len(harnesses)}", yaml_text, **settings)
        await harness.start()
        harnesses.append(harness)
        return harness

    yield start
    for h in harnesses:
        await h.close()
