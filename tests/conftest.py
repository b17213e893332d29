"""Shared fixtures: free loopback ports, in-process gateways, demo pods and config files."""

from __future__ import annotations

import faulthandler
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway_lab.demo_pod import PodConfig, bound_port, start_pod
from tests.helpers import GatewayHarness, PodHandle

_MEASURED = pytest.StashKey[list[tuple[str, str]]]()

HUNG_TEST_SECONDS = float(os.environ.get("GATEWAY_TEST_HANG_SECONDS", "600"))
"""The last resort for a test that hangs where pytest-timeout cannot act: faulthandler's
watchdog prints every thread's stack and ends the run, so CI fails with the place of the hang
instead of waiting for its own limit. pytest-timeout (300 s) fires first whenever it can.
``GATEWAY_TEST_HANG_SECONDS`` changes it (tests/test_watchdog.py sets a few seconds)."""
_WATCHDOG_FD = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    # The terminal's stderr, kept before any test captures it (as pytest's faulthandler does).
    try:
        fileno = sys.stderr.fileno()
    except (AttributeError, ValueError):
        assert sys.__stderr__ is not None
        fileno = sys.__stderr__.fileno()
    config.stash[_WATCHDOG_FD] = os.dup(fileno)


def pytest_unconfigure(config: pytest.Config) -> None:
    faulthandler.cancel_dump_traceback_later()
    os.close(config.stash[_WATCHDOG_FD])


def _arm_watchdog(config: pytest.Config) -> None:
    faulthandler.dump_traceback_later(HUNG_TEST_SECONDS, exit=True, file=config.stash[_WATCHDOG_FD])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _arm_watchdog(item.config)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item | pytest.Collector) -> None:
    """A failed test's report cancels every timer (pytest's faulthandler plugin and
    pytest-timeout both do, for pdb's sake), so a hang in the failed test's teardown went
    unguarded: CI once hung for good in uvloop's ``loop.close()`` after a test failed. The
    watchdog is armed again for what is left of the test."""
    if isinstance(node, pytest.Item):
        _arm_watchdog(node.config)


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


FREE_PORTS = range(20000, 32768)
"""Where ``free_port`` looks: below the kernel's ephemeral range (``ip_local_port_range``,
32768-60999 by default), from which Linux takes the source port of every outgoing connection,
and above the lab's fixed ports. ``bind(("127.0.0.1", 0))`` hands out ports from the ephemeral
range itself, so a connection made between choosing a port and binding it could take the port
first: a chained-gateway test once failed in CI that way."""
_handed_out: set[int] = set()
_picker = random.Random()


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on now and that no earlier call returned."""
    for _ in range(1000):
        port = _picker.choice(FREE_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port on {host} in {FREE_PORTS}")


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
