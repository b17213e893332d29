"""Tests: gRPC active health checks (``grpc.health.v1``) against real grpc.aio servers on
127.0.0.1: statuses, thresholds, timeouts, channel reuse and closing, and TLS (SIMPLE, MUTUAL,
rotated material)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from gateway_core.snapshot import (
    GrpcHealthCheckPolicy,
    HealthCheckPolicy,
    UpstreamTls,
    UpstreamTlsMode,
)
from gateway_core.upstream.client_tls import H2_ALPN, ClientTlsSlot
from gateway_core.upstream.health_check import HealthChecker
from gateway_core.upstream.host import Host
from gateway_core.utils.clock import FakeClock
from tests.functional.support import lab_certs

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RecordingHealth(health.aio.HealthServicer):
    """The stock servicer, plus the peer of every Check and an optional delay."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[str] = []
        self.delay = 0.0

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        self.peers.append(context.peer())
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().Check(request, context)


async def _server(
    credentials: grpc.ServerCredentials | None = None, port: int = 0
) -> tuple[grpc.aio.Server, RecordingHealth, int]:
    server = grpc.aio.server()
    servicer = RecordingHealth()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"127.0.0.1:{port}"
    if credentials is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, credentials)
    await server.start()
    await servicer.set("", SERVING)
    await servicer.set("test.Echo", SERVING)
    return server, servicer, port


@pytest.fixture
async def pod() -> AsyncIterator[tuple[RecordingHealth, int]]:
    server, servicer, port = await _server()
    yield servicer, port
    await server.stop(0)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, bool]] = []

    def __call__(self, host: Host) -> None:
        self.changes.append((host.label, host.hc_failed))


def _checker(
    hosts: Callable[[], Sequence[Host]],
    recorder: Recorder | None = None,
    *,
    service: str = "",
    timeout: float = 2.0,
    unhealthy: int = 2,
    healthy: int = 2,
    tls: ClientTlsSlot | None = None,
    server_name: str | None = None,
) -> HealthChecker:
    policy = HealthCheckPolicy(
        interval=0.05,
        timeout=timeout,
        unhealthy_threshold=unhealthy,
        healthy_threshold=healthy,
        grpc=GrpcHealthCheckPolicy(service_name=service),
    )
    return HealthChecker(
        policy,
        hosts,
        lambda: None,
        server_name,
        FakeClock(),
        recorder or Recorder(),
        tls_slot=tls,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serving_passes_not_serving_fails_after_thresholds(
    pod: tuple[RecordingHealth, int],
) -> None:
    """SERVING passes; two NOT_SERVING answers mark the host, two SERVING ones clear it; every
    answered probe reuses the host's one channel."""
    servicer, port = pod
    host = Host("127.0.0.1", port)
    recorder = Recorder()
    checker = _checker(lambda: [host], recorder)
    try:
        flags, statuses = [], []
        for status in (SERVING, NOT_SERVING, NOT_SERVING, NOT_SERVING, SERVING, SERVING):
            await servicer.set("", status)
            await checker.check_all()
            flags.append(host.hc_failed)
            statuses.append(checker.health[host.key].last_status)
            if status == NOT_SERVING:
                error = checker.health[host.key].last_error
                assert error == "grpc.health.v1 status NOT_SERVING"
        assert flags == [False, False, True, True, True, False]
        assert statuses == ["SERVING"] + ["NOT_SERVING"] * 3 + ["SERVING"] * 2
        assert recorder.changes == [(host.label, True), (host.label, False)]
        assert checker.health[host.key].last_error is None
        assert len(servicer.peers) == 6
        assert len(set(servicer.peers)) == 1, servicer.peers
    finally:
        await checker.stop()


async def test_named_service_and_unknown_service(pod: tuple[RecordingHealth, int]) -> None:
    """``serviceName`` is the request's service: a known one follows its own status, an
    unknown one is a NOT_FOUND failure."""
    servicer, port = pod
    await servicer.set("", NOT_SERVING)
    host = Host("127.0.0.1", port)
    named = _checker(lambda: [host], service="test.Echo", unhealthy=1)
    unknown_host = Host("127.0.0.1", port)
    unknown = _checker(lambda: [unknown_host], service="no.such.Service", unhealthy=1)
    try:
        await named.check_all()
        await unknown.check_all()
    finally:
        await named.stop()
        await unknown.stop()
    assert not host.hc_failed
    assert named.health[host.key].last_status == "SERVING"
    assert unknown_host.hc_failed
    assert (unknown.health[unknown_host.key].last_error or "").startswith("NOT_FOUND")


async def test_timeout_and_refused_connection_fail(pod: tuple[RecordingHealth, int]) -> None:
    """A Check slower than the timeout fails as ``timeout``; nothing listening is UNAVAILABLE."""
    servicer, port = pod
    servicer.delay = 1.0
    slow = Host("127.0.0.1", port)
    dead = Host("127.0.0.1", _closed_port())
    checker = _checker(lambda: [slow, dead], timeout=0.2, unhealthy=1)
    try:
        async with asyncio.timeout(5):
            await checker.check_all()
    finally:
        await checker.stop()
    assert slow.hc_failed and dead.hc_failed
    assert checker.health[slow.key].last_error == "timeout"
    assert (checker.health[dead.key].last_error or "").startswith("UNAVAILABLE: ")
    assert checker.health[dead.key].last_status is None


async def test_a_failed_probe_reconnects_at_the_next_round() -> None:
    """A server that went away and came back on the same port passes at the next round: the
    failed probe dropped its channel, so no reconnect backoff delays the recovery."""
    server, _, port = await _server()
    host = Host("127.0.0.1", port)
    checker = _checker(lambda: [host], unhealthy=1, healthy=1)
    try:
        await checker.check_all()
        await server.stop(0)
        await checker.check_all()
        assert host.hc_failed
        server, servicer, _ = await _server(port=port)
        await checker.check_all()
        assert not host.hc_failed
        assert checker.health[host.key].last_status == "SERVING"
        assert len(servicer.peers) == 1
    finally:
        await checker.stop()
        await server.stop(0)


class Relay:
    """A TCP relay in front of a port that counts the connections open through it."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.open = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.open -= 1

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def _until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Poll ``condition`` every 20 ms; fail after ``within`` seconds."""
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


async def test_channels_of_hosts_that_left_and_all_on_stop_are_closed(
    pod: tuple[RecordingHealth, int],
) -> None:
    """Each host keeps one connection between rounds; a host that left has it closed at the
    next round, and ``stop`` closes the rest."""
    _, port = pod
    kept_relay, gone_relay = await Relay(port).start(), await Relay(port).start()
    kept, gone = Host("127.0.0.1", kept_relay.port), Host("127.0.0.1", gone_relay.port)
    current = [kept, gone]
    checker = _checker(lambda: current)
    try:
        await checker.check_all()
        await checker.check_all()
        assert (kept_relay.open, gone_relay.open) == (1, 1)
        current = [kept]
        await checker.check_all()
        await _until(lambda: gone_relay.open == 0)
        assert kept_relay.open == 1
        await checker.stop()
        await _until(lambda: kept_relay.open == 0)
    finally:
        await checker.stop()
        await kept_relay.close()
        await gone_relay.close()


def _tls_slot(tls: UpstreamTls) -> ClientTlsSlot:
    slot = ClientTlsSlot(tls, H2_ALPN)
    assert slot.load() is None
    return slot


async def test_tls_simple_and_mutual(tmp_path: Path) -> None:
    """TLS probes verify the server against the CA and the server name (SNI); MUTUAL presents
    the client certificate a server that requires one checks; a failed handshake is a failure."""
    pki = lab_certs(tmp_path / "pki")
    grpc_cred = pki / "grpc-credential"
    key_cert = [((grpc_cred / "tls.key").read_bytes(), (grpc_cred / "tls.crt").read_bytes())]
    simple_server, _, simple_port = await _server(grpc.ssl_server_credentials(key_cert))
    mutual_server, _, mutual_port = await _server(
        grpc.ssl_server_credentials(
            key_cert, root_certificates=(pki / "ca.crt").read_bytes(), require_client_auth=True
        )
    )
    simple = UpstreamTls(UpstreamTlsMode.SIMPLE, ca_file=str(pki / "ca.crt"))
    mutual = UpstreamTls(
        UpstreamTlsMode.MUTUAL,
        ca_file=str(pki / "ca.crt"),
        cert_file=str(pki / "tier1-client" / "tls.crt"),
        key_file=str(pki / "tier1-client" / "tls.key"),
    )
    cases = [
        # (server port, tls, server name, passes)
        (simple_port, simple, "grpc.example.com", True),
        (simple_port, simple, "other.example.com", False),
        (mutual_port, mutual, "grpc.example.com", True),
        (mutual_port, simple, "grpc.example.com", False),
    ]
    checkers: list[tuple[HealthChecker, Host, bool]] = []
    try:
        for port, tls, name, passes in cases:
            host = Host("127.0.0.1", port)
            checker = _checker(
                lambda h=host: [h], unhealthy=1, tls=_tls_slot(tls), server_name=name
            )
            checkers.append((checker, host, passes))
            await checker.check_all()
    finally:
        for checker, _, _ in checkers:
            await checker.stop()
        await simple_server.stop(0)
        await mutual_server.stop(0)
    results = [(not host.hc_failed, checker.health[host.key]) for checker, host, _ in checkers]
    assert [ok for ok, _ in results] == [passes for _, _, passes in checkers], results
    for ok, state in results:
        if not ok:
            assert (state.last_error or "").startswith("UNAVAILABLE: "), state


async def test_tls_material_follows_the_slot(tmp_path: Path) -> None:
    """The probe reads the CA again when the certificate watcher rebuilt the slot; a slot that
    cannot skip verification for grpcio fails every probe with the reason."""
    pki = lab_certs(tmp_path / "pki")
    other = lab_certs(tmp_path / "other")
    grpc_cred = pki / "grpc-credential"
    key_cert = [((grpc_cred / "tls.key").read_bytes(), (grpc_cred / "tls.crt").read_bytes())]
    server, _, port = await _server(grpc.ssl_server_credentials(key_cert))
    ca_file = tmp_path / "ca.crt"
    ca_file.write_bytes((other / "ca.crt").read_bytes())
    slot = _tls_slot(UpstreamTls(UpstreamTlsMode.SIMPLE, ca_file=str(ca_file)))
    host = Host("127.0.0.1", port)
    checker = _checker(
        lambda: [host], unhealthy=1, healthy=1, tls=slot, server_name="grpc.example.com"
    )
    skip = _tls_slot(UpstreamTls(UpstreamTlsMode.SIMPLE, insecure_skip_verify=True))
    skipped_host = Host("127.0.0.1", port)
    skipping = _checker(lambda: [skipped_host], unhealthy=1, tls=skip)
    try:
        await checker.check_all()
        assert host.hc_failed
        ca_file.write_bytes((pki / "ca.crt").read_bytes() + b"\n")
        assert slot.load() is None  # what the certificate watcher does
        await checker.check_all()
        assert not host.hc_failed
        await skipping.check_all()
    finally:
        await checker.stop()
        await skipping.stop()
        await server.stop(0)
    assert skipped_host.hc_failed
    error = skipping.health[skipped_host.key].last_error or ""
    assert "grpcio cannot skip certificate verification" in error
