"""Active health checks against real aiohttp servers on 127.0.0.1 (plain and TLS)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest
import trustme
from aiohttp import web

from gateway_core.snapshot import HealthCheckPolicy
from gateway_core.upstream.health_check import HealthChecker
from gateway_core.upstream.host import Host
from gateway_core.utils.clock import FakeClock


@dataclass
class Upstream:
    """A fake upstream whose health-check status the test flips."""

    status: int = 200
    delay: float = 0.0
    host_headers: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.host_headers.append(request.headers.get("Host", ""))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")


async def _serve(upstream: Upstream, context: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz/ready", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    upstream.port = runner.addresses[0][1]
    return runner


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    runner = await _serve(up)
    yield up
    await runner.cleanup()


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []

    def __call__(self, host: Host) -> None:
        self.changes.append((host.label, host.hc_failed))


def _checker(
    hosts: Callable[[], Sequence[Host]],
    recorder: Recorder,
    *,
    policy: HealthCheckPolicy | None = None,
    context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> HealthChecker:
    return HealthChecker(
        policy or HealthCheckPolicy(interval=0.05, timeout=0.5),
        hosts,
        lambda: context,
        server_hostname,
        FakeClock(),
        recorder,
    )


async def test_thresholds_flip_hc_failed_both_ways(upstream: Upstream) -> None:
    """Two failures mark the host failed, two passes bring it back; each flip is reported once."""
    host = Host("127.0.0.1", upstream.port)
    recorder = Recorder()
    checker = _checker(lambda: [host], recorder)
    try:
        flags = []
        for status in (200, 503, 503, 503, 200, 200):
            upstream.status = status
            await checker.check_all()
            flags.append(host.hc_failed)
        assert flags == [False, False, True, True, True, False]
        assert recorder.changes == [(host.label, True), (host.label, False)]
        assert checker.health[host.key].last_status == 200
    finally:
        await checker.stop()


async def test_host_header_from_policy_or_server_name(upstream: Upstream) -> None:
    """The probe carries Host = policy.host, else the TLS server name, else the address."""
    host = Host("127.0.0.1", upstream.port)
    policy = HealthCheckPolicy(host="health.example", timeout=0.5)
    for checker in (
        _checker(lambda: [host], Recorder(), policy=policy, server_hostname="svc.example"),
        _checker(lambda: [host], Recorder(), server_hostname="svc.example"),
        _checker(lambda: [host], Recorder()),
    ):
        await checker.check_all()
        await checker.stop()
    assert upstream.host_headers == ["health.example", "svc.example", "127.0.0.1"]


async def test_timeout_is_a_failure(upstream: Upstream) -> None:
    """A probe slower than the timeout fails."""
    upstream.delay = 0.5
    host = Host("127.0.0.1", upstream.port)
    policy = HealthCheckPolicy(timeout=0.05, unhealthy_threshold=1)
    checker = _checker(lambda: [host], Recorder(), policy=policy)
    try:
        await checker.check_all()
    finally:
        await checker.stop()
    assert host.hc_failed
    assert checker.health[host.key].last_error == "timeout"


async def test_refused_connection_is_a_failure() -> None:
    """Nothing listening: the host is marked failed after the threshold."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    host = Host("127.0.0.1", port)
    checker = _checker(lambda: [host], Recorder(), policy=HealthCheckPolicy(unhealthy_threshold=1))
    try:
        await checker.check_all()
    finally:
        await checker.stop()
    assert host.hc_failed
    assert checker.health[host.key].last_error is not None


async def test_hosts_may_change_between_rounds(upstream: Upstream) -> None:
    """Counters survive for hosts still present; removed hosts are forgotten."""
    upstream.status = 500
    kept = Host("127.0.0.1", upstream.port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dropped = Host("127.0.0.1", sock.getsockname()[1])
    current = [kept, dropped]
    checker = _checker(lambda: current, Recorder(), policy=HealthCheckPolicy(unhealthy_threshold=3))
    try:
        await checker.check_all()
        current = [kept]
        await checker.check_all()
        assert set(checker.health) == {kept.key}
        assert checker.health[kept.key].failures == 2
        await checker.check_all()
        assert kept.hc_failed
    finally:
        await checker.stop()


async def test_loop_probes_immediately_and_stops(upstream: Upstream) -> None:
    """start() probes at once, keeps probing every interval, and stop() ends the loop."""
    host = Host("127.0.0.1", upstream.port)
    recorder = Recorder()
    checker = _checker(lambda: [host], recorder)
    await checker.start()
    try:
        for _ in range(100):
            if len(upstream.host_headers) >= 3:
                break
            await asyncio.sleep(0.02)
        assert len(upstream.host_headers) >= 3
    finally:
        await checker.stop()
    seen = len(upstream.host_headers)
    await asyncio.sleep(0.15)
    assert len(upstream.host_headers) == seen


async def test_tls_probe_uses_sni_and_verifies_the_name() -> None:
    """HTTPS probes send the server name as SNI and verify the certificate against it."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("gw.example.test").configure_cert(server_context)
    up = Upstream()

    def remember_sni(sock: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        up.server_names.append(name)

    server_context.sni_callback = remember_sni
    runner = await _serve(up, server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    host = Host("127.0.0.1", up.port)
    policy = HealthCheckPolicy(unhealthy_threshold=1, timeout=2.0)
    good = _checker(
        lambda: [host],
        Recorder(),
        policy=policy,
        context=client_context,
        server_hostname="gw.example.test",
    )
    wrong = Host("127.0.0.1", up.port)
    bad = _checker(
        lambda: [wrong],
        Recorder(),
        policy=policy,
        context=client_context,
        server_hostname="other.example.test",
    )
    try:
        await good.check_all()
        await bad.check_all()
    finally:
        await good.stop()
        await bad.stop()
        await runner.cleanup()
    assert not host.hc_failed
    assert good.health[host.key].last_status == 200
    assert up.server_names[0] == "gw.example.test"
    assert wrong.hc_failed
    assert "Certificate" in (bad.health[wrong.key].last_error or "")
