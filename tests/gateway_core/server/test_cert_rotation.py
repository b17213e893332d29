"""Certificate rotation without restart, under load.

A ``tier2-gateway`` process terminates TLS with a lab certificate. While clients keep making new
TLS connections (every few requests) and one long-lived keep-alive connection keeps sending, the
certificate and key files are re-issued in place. New handshakes must then present the new
serial number, with zero handshake failures and zero failed requests, and the established
connection keeps working.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path

import aiohttp
from cryptography import x509

from certs.generate import generate_lab_certs, rotate_credential
from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import GatewayProcess, constant_load, wait_for


def https_config(port: int) -> str:
    """One HTTPS server for httpbin.example.com answering 200 "ok" itself."""
    return config(
        port,
        '  - directResponse: {status: 200, body: {string: "ok"}}',
        {},
        vs_hosts="[httpbin.example.com]",
        gateway_hosts="[httpbin.example.com]",
        credential="httpbin-credential",
    )


async def served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="httpbin.example.com"
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return int(x509.load_der_x509_certificate(der).serial_number)


async def test_rotation_under_load_serves_new_serial_and_drops_nothing(
    tmp_path: Path, measured: Callable[[str], None]
) -> None:
    """After rotation new handshakes get the new serial; no request or handshake fails."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    ca = certs / "ca.crt"
    port, admin = free_port(), free_port()
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(https_config(port))
    gw = GatewayProcess(
        "tier2",
        [cfg],
        admin,
        tmp_path / "gw.log",
        "--bind-address",
        "127.0.0.1",
        "--cert-dir",
        str(certs),
    )
    ctx = ssl.create_default_context(cafile=str(ca))
    url = f"https://httpbin.example.com:{port}/"
    resolver = _StaticResolver(port)
    try:
        await gw.wait_ready()
        old_serial = await served_serial(port, ca)
        connector = aiohttp.TCPConnector(ssl=ctx, resolver=resolver, limit=1)
        async with aiohttp.ClientSession(connector=connector) as keepalive:
            async with keepalive.get(url) as r:
                assert r.status == 200
            async with constant_load(
                url,
                workers=4,
                ssl=ctx,
                new_connection_every=3,
                max_seconds=60,
                keep_bodies=False,
                resolver=resolver,
            ) as load:
                await asyncio.sleep(0.5)
                new_cert = rotate_credential(certs, "httpbin-credential")

                async def rotated() -> bool:
                    return await served_serial(port, ca) == new_cert.serial_number

                await wait_for(rotated, 10, "the new certificate to be served")
                await asyncio.sleep(0.5)
                async with keepalive.get(url) as r:
                    assert r.status == 200  # the connection opened before rotation still works
                reused = connector._conns  # one pooled connection, reused across the rotation
            assert len(reused) == 1
    finally:
        gw.stop()
    measured(
        f"rotation test: {load.total} requests over fresh TLS connections, "
        f"statuses {dict(load.statuses)}, errors {dict(load.errors)}, "
        f"serial {old_serial:x} -> {new_cert.serial_number:x}"
    )
    assert new_cert.serial_number != old_serial
    assert load.total > 100
    assert load.failures == 0, load.errors


class _StaticResolver(aiohttp.abc.AbstractResolver):
    """Resolves httpbin.example.com to 127.0.0.1 (``curl --resolve``) so SNI carries the name."""

    def __init__(self, port: int) -> None:
        self._port = port

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict[str, object]]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": 2,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None
