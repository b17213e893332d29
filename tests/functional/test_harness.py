"""Functional: the in-process gateway harness (tests/helpers.py) leaves nothing running when a
gateway fails to start. A half-started gateway kept its admin server open, and on uvloop the
test's ``loop.close()`` then never returned: one failed test hung the whole run in CI."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.functional.test_gateway_loops import forward
from tests.helpers import GatewayHarness


async def test_a_gateway_that_cannot_bind_is_closed_before_the_test_fails(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        harness = GatewayHarness(tmp_path / "gw", forward(port, free_port()))
        with pytest.raises(AssertionError, match="could not bind its listeners"):
            await harness.start()
    admin_port = harness.gateway.admin_port
    assert admin_port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", admin_port), timeout=2).close()
