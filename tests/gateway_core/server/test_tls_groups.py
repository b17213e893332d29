"""Tests for gateway_core/tls/groups.py: only X25519, P-256 and P-384, downstream and upstream.

Each client or server on the other side offers exactly one group (``set_ecdh_curve``), over
TLS 1.3, where the group is chosen independently of the certificate: the handshake succeeds
only when the gateway's context offers that group.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway_core.snapshot import UpstreamTls, UpstreamTlsMode
from gateway_core.tls import groups
from gateway_core.upstream.client_tls import build_client_context
from tests.conftest import free_port
from tests.functional.support import lab_certs, tls_gateway_yaml
from tests.gateway_core.server.tls_testkit import Pki, pki

__all__ = ["pki"]  # fixture, used by name

COMPLIANT = ("X25519", "prime256v1", "secp384r1")
REFUSED = ("X448", "secp521r1")


def _client(ca_file: Path, curve: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_ecdh_curve(curve)
    return ctx


async def _handshake(port: int, ctx: ssl.SSLContext, server_hostname: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname),
            5,
        )
    except (ssl.SSLError, ConnectionError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except (ssl.SSLError, ConnectionError):
        pass
    return True


def test_binding_verified_on_this_runtime() -> None:
    """On CPython with its OpenSSL the SSL_CTX pointer verifies and the list is set."""
    assert groups.GROUPS_STATUS.startswith("TLS groups X25519:P-256:P-384 set")
    assert groups.restrict_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is True


async def test_downstream_listener_offers_only_the_mozilla_groups(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """A gateway TLS listener completes handshakes with X25519, P-256 and P-384 clients and
    refuses clients that offer only X448 or P-521."""
    certs = lab_certs(tmp_path / "certs")
    port = free_port()
    await gateway(tls_gateway_yaml(free_port(), port), cert_dir=str(certs))
    results = {
        curve: await _handshake(port, _client(certs / "ca.crt", curve), "bookinfo.example.com")
        for curve in COMPLIANT + REFUSED
    }
    assert results == {**dict.fromkeys(COMPLIANT, True), **dict.fromkeys(REFUSED, False)}


async def test_upstream_contexts_offer_only_the_mozilla_groups(pki: Pki) -> None:
    """``build_client_context`` (upstream TLS) fails against a server that accepts only X448
    or P-521 and succeeds against one that accepts only X25519, P-256 or P-384."""
    crt, key = pki.issue("upstream", "upstream.example")
    results = {}
    for curve in COMPLIANT + REFUSED:
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(crt, key)
        server.set_ecdh_curve(curve)
        srv = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=server)
        port = srv.sockets[0].getsockname()[1]
        tls = UpstreamTls(mode=UpstreamTlsMode.SIMPLE, ca_file=pki.ca_file())
        client = build_client_context(tls)
        client.minimum_version = ssl.TLSVersion.TLSv1_3
        results[curve] = await _handshake(port, client, "upstream.example")
        srv.close()
        await srv.wait_closed()
    assert results == {**dict.fromkeys(COMPLIANT, True), **dict.fromkeys(REFUSED, False)}


def test_without_a_verified_binding_nothing_is_changed_and_it_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The fallback: no binding means no ctypes call, False, and one logged warning."""
    monkeypatch.setattr(groups, "_BINDING", None)
    groups._warn_unrestricted.cache_clear()
    with caplog.at_level(logging.WARNING, logger="gateway.tls"):
        assert groups.restrict_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is False
        assert groups.restrict_groups(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)) is False
    assert [r.getMessage() for r in caplog.records] == [groups.GROUPS_STATUS]
    groups._warn_unrestricted.cache_clear()
