"""Shared fixtures: free loopback ports, in-process gateways, demo pods and config files."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway_lab.demo_pod import PodConfig, bound_port, start_pod
from tests.helpers import GatewayHarness, PodHandle

_MEASURED = pytest.StashKey[list[tuple[str, str]]]()


@pytest.fixture
def measured(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Report what a test measured (request counts, timings, shares): the lines are printed
    in a "measured by the tests" section at the end of the run, even when it passes."""
    lines = request.config.stash.setdefault(_MEASURED, [])

    def report(text: str) -> None:
        lines.append((request.node.nodeid, text))

    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_MEASURED, [])
    if not lines:
        return
    terminalreporter.section("measured by the tests")
    for nodeid, text in lines:
        terminalreporter.write_line(nodeid)
        for line in text.rstrip().splitlines():
            terminalreporter.write_line(f"    {line}")


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
