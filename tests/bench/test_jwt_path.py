"""Tests: the bench's JWT path (``b-ours-jwt``): selectable but not in the default set, wrk
sends the token, and a real gateway with the path's rule verifies the token the bench mints."""

from __future__ import annotations

from pathlib import Path

from bench.configs import Upstream, istio_gateway
from bench.paths import jwt_rule, select
from bench.wrk import wrk_argv
from gateway_lab.jwt_issuer import mint
from tests.conftest import free_port
from tests.functional.support import capture_upstream, get
from tests.helpers import GatewayHarness


def test_the_jwt_path_is_selectable_but_not_default() -> None:
    assert "b-ours-jwt" not in select([], [])
    assert select([], ["b-ours", "b-ours-jwt"]) == ("b-ours", "b-ours-jwt")


def test_wrk_sends_the_header_lines() -> None:
    argv = wrk_argv("http://127.0.0.1:1/", duration=1, connections=2, cpu=None, headers=("X-A: b",))
    assert argv[-3:] == ["-H", "X-A: b", "http://127.0.0.1:1/"]


async def test_the_rule_verifies_the_benchmark_token(tmp_path: Path) -> None:
    """The path's configuration loads, its token is accepted (200) and a forged one is not
    (401): the benchmark measures real verification."""
    async with capture_upstream() as up:
        port = free_port()
        yaml = istio_gateway(port, Upstream(up.port)) + "---\n" + jwt_rule(tmp_path)
        harness = GatewayHarness(tmp_path / "gw", yaml)
        await harness.start()
        try:
            token = mint(tmp_path, "bench", [], ttl=600)
            good = await get(port, headers={"Authorization": f"Bearer {token}"})
            bad = await get(port, headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
        finally:
            await harness.close()
    assert (good.status, bad.status) == (200, 401)
