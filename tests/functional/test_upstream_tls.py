"""Functional: upstream TLS origination (DestinationRule ``tls: MUTUAL``) on real sockets. The
request path only reads the client context the control path published: opening upstream
connections reads no file, a rotated client certificate is used by new connections once the
certificate watcher has rebuilt the context, and material that failed to load is picked up
when it appears."""

from __future__ import annotations

import asyncio
import builtins
import os
import shutil
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.generate import rotate_credential
from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    RawResponse,
    capture_upstream,
    config,
    get,
    lab_certs,
)

ROUTE = "  - route: [{destination: {host: up.svc}}]"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    return lab_certs(tmp_path / "pki")


def upstream_context(pki: Path) -> ssl.SSLContext:
    """Tier-2's side: the lab server certificate, client certificates required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "tier2-credential" / "tls.crt", pki / "tier2-credential" / "tls.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def answer_client_serial(req: RawRequest, writer: asyncio.StreamWriter) -> bool:
    """Answers with the serial number (hex) of the client certificate the gateway presented."""
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    body = b"%x" % x509.load_der_x509_certificate(der).serial_number
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    return True


def mtls_rule(tls: str = "credentialName: tier1-client") -> str:
    """MUTUAL origination; one request per connection, so every request opens a connection."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: up}}
spec:
  host: up.svc
  trafficPolicy:
    connectionPool: {{http: {{maxRequestsPerConnection: 1}}}}
    tls: {{mode: MUTUAL, {tls}, sni: tier2.cluster-1.lab}}
"""


def serial_of(pki: Path) -> int:
    cert = x509.load_pem_x509_certificate((pki / "tier1-client" / "tls.crt").read_bytes())
    return int(cert.serial_number)


async def test_opening_upstream_connections_reads_no_file(
    gateway: Callable[..., Any], pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request opens a new TLS connection, and none of them stats or opens a file or
    loads certificates: the context was built when the cluster was. (Watchers are idle here.)"""
    calls: list[str] = []

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name}{args[:2]!r}")
            return real(*args, **kwargs)

        return wrapper

    async with capture_upstream(answer_client_serial, tls=upstream_context(pki)) as up:
        port = free_port()
        cfg = config(port, ROUTE, {"up.svc": [up.port]}, extra=mtls_rule())
        await gateway(cfg, cert_dir=str(pki), watch_interval=3600.0)
        assert (await get(port, "/warm")).status == 200
        monkeypatch.setattr(os, "stat", counting("os.stat", os.stat))
        monkeypatch.setattr(builtins, "open", counting("open", builtins.open))
        for method in ("load_cert_chain", "load_verify_locations", "load_default_certs"):
            real = getattr(ssl.SSLContext, method)
            monkeypatch.setattr(ssl.SSLContext, method, counting(method, real))
        responses = [await get(port, f"/{i}") for i in range(5)]
        monkeypatch.undo()
    assert [r.status for r in responses] == [200] * 5
    assert {int(r.body, 16) for r in responses} == {serial_of(pki)}
    assert up.connections == 6
    assert calls == []


async def test_rotated_client_certificate_is_presented_on_new_connections(
    gateway: Callable[..., Any], pki: Path
) -> None:
    """The tier1 client certificate is re-issued in place (key first, then certificate); the
    certificate watcher rebuilds the context and the next connections present the new serial.
    No request fails meanwhile."""
    async with capture_upstream(answer_client_serial, tls=upstream_context(pki)) as up:
        port = free_port()
        cfg = config(port, ROUTE, {"up.svc": [up.port]}, extra=mtls_rule())
        await gateway(cfg, cert_dir=str(pki))
        first = await get(port, "/")
        assert (first.status, int(first.body, 16)) == (200, serial_of(pki))
        new_serial = rotate_credential(pki, "tier1-client").serial_number
        seen = await poll_until(port, lambda r: int(r.body, 16) == new_serial)
    assert {r.status for r in seen} == {200}
    assert int(seen[-1].body, 16) == new_serial != int(first.body, 16)


async def test_material_that_appears_later_is_picked_up_by_the_watcher(
    gateway: Callable[..., Any], pki: Path, tmp_path: Path
) -> None:
    """A client certificate that is missing when the configuration loads: requests fail as
    connect failures (503 UF) naming the TLS error, and once the files appear the watcher
    publishes a context and requests succeed, without a reload."""
    folder = tmp_path / "later"
    files = f"clientCertificate: {folder}/tls.crt, privateKey: {folder}/tls.key"
    tls = f"{files}, caCertificates: {pki}/ca.crt"
    async with capture_upstream(answer_client_serial, tls=upstream_context(pki)) as up:
        port = free_port()
        await gateway(config(port, ROUTE, {"up.svc": [up.port]}, extra=mtls_rule(tls)))
        failed = await get(port, "/")
        assert failed.status == 503 and b"upstream TLS" in failed.body
        shutil.copytree(pki / "tier1-client", folder)
        seen = await poll_until(port, lambda r: r.status == 200)
    assert int(seen[-1].body, 16) == serial_of(pki)
    assert up.connections == 1


async def poll_until(
    port: int, done: Callable[[RawResponse], bool], within: float = 10.0
) -> list[RawResponse]:
    """Request until ``done`` holds for a response (bounded in time and count)."""
    seen: list[RawResponse] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for _ in range(1000):
        seen.append(await get(port, "/"))
        if done(seen[-1]):
            return seen
        assert loop.time() < deadline, f"not done within {within}s: {seen[-1]}"
        await asyncio.sleep(0.05)
    raise AssertionError("no response satisfied the condition")
