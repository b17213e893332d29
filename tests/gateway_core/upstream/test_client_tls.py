"""Tests for gateway_core/upstream/client_tls.py: upstream TLS origination (SIMPLE, MUTUAL)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway_core.server.tls import ServerTlsStore, TlsConfigError
from gateway_core.snapshot import UpstreamTls, UpstreamTlsMode
from gateway_core.upstream.client_tls import (
    ClientContextStore,
    build_client_context,
    check_upstream_peer,
    upstream_server_hostname,
)
from tests.gateway_core.server.tls_testkit import MUTUAL, Pki, _replace_file, pki, run, serving

__all__ = ["pki", "run"]


def test_upstream_server_hostname() -> None:
    """The configured SNI wins; otherwise the authority host without its port."""
    simple = UpstreamTls(UpstreamTlsMode.SIMPLE)
    assert upstream_server_hostname(simple, "reviews.test:9080") == "reviews.test"
    assert upstream_server_hostname(simple, "[::1]:443") == "::1"
    assert upstream_server_hostname(simple, "10.0.0.1") == "10.0.0.1"
    assert upstream_server_hostname(replace(simple, sni="tier2.lab"), "x.test") == "tier2.lab"
    assert upstream_server_hostname(simple, "") is None


def test_client_context_settings(pki: Pki) -> None:
    """SIMPLE verifies the hostname, SANs move the check after the handshake, insecure skips it,
    MUTUAL without a certificate is a config error."""
    ca = pki.ca_file()
    simple = UpstreamTls(UpstreamTlsMode.SIMPLE, ca_file=ca)
    ctx = build_client_context(simple)
    assert (ctx.verify_mode, ctx.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    with_sans = build_client_context(replace(simple, subject_alt_names=("a.test",)))
    assert (with_sans.verify_mode, with_sans.check_hostname) == (ssl.CERT_REQUIRED, False)
    insecure = build_client_context(replace(simple, insecure_skip_verify=True))
    assert insecure.verify_mode == ssl.CERT_NONE
    with pytest.raises(TlsConfigError, match="requires client_certificate"):
        build_client_context(replace(simple, mode=UpstreamTlsMode.MUTUAL))
    with pytest.raises(TlsConfigError, match="upstream TLS"):
        build_client_context(replace(simple, ca_file="/nonexistent/ca.crt"))


def test_client_context_store_publishes_and_rebuilds_on_refresh(pki: Pki) -> None:
    """One slot per spec, its context built when the slot is made; only ``refresh`` (the
    certificate watcher) rebuilds it after a file change; a bad file keeps the previous one and
    is reported once; a slot whose files never loaded carries the error; ``retain`` forgets."""
    ca_path = Path(pki.ca_file())
    tls = UpstreamTls(UpstreamTlsMode.SIMPLE, ca_file=str(ca_path))
    store = ClientContextStore()
    slot = store.slot(tls)
    first = slot.context
    assert first is not None and store.slot(tls) is slot
    assert store.refresh() == [] and slot.context is first
    _replace_file(ca_path, pki.other_ca.cert_pem.bytes())
    assert slot.context is first  # nothing rebuilds it until the watcher runs
    assert store.refresh() == []
    second = slot.context
    assert second is not None and second is not first
    _replace_file(ca_path, b"garbage")
    (error,) = store.refresh()
    assert error.startswith("keeping the previous upstream TLS context: upstream TLS:")
    assert store.refresh() == [] and slot.context is second
    missing = store.slot(replace(tls, ca_file="/nonexistent/ca.crt"))
    assert missing.context is None and missing.error.startswith("upstream TLS:")
    store.retain([])
    fresh = store.slot(tls)
    assert fresh is not slot and fresh.context is None and "upstream TLS" in fresh.error


def test_upstream_simple_and_mutual_against_a_real_server(
    pki: Pki, run: Callable[..., Any]
) -> None:
    """Origination: hostname checked against SNI/authority, SANs checked after the handshake,
    insecure_skip_verify accepts an unknown CA, MUTUAL presents the client certificate."""
    store = ServerTlsStore([pki.server("up", "up.test"), pki.server("m", "m.test", mode=MUTUAL)])
    crt, key = pki.issue("tier1", "tier1-gateway")
    simple = UpstreamTls(UpstreamTlsMode.SIMPLE, ca_file=pki.ca_file())
    mutual = replace(simple, mode=UpstreamTlsMode.MUTUAL, cert_file=str(crt), key_file=str(key))
    clients = ClientContextStore()

    async def call(port: int, tls: UpstreamTls, authority: str) -> str:
        host = upstream_server_hostname(tls, authority)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=clients.slot(tls).context, server_hostname=host
        )
        try:
            check_upstream_peer(tls, writer.get_extra_info("ssl_object"))
            writer.write(b"hi\n")
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def outcome(port: int, tls: UpstreamTls, authority: str) -> str:
        try:
            return await call(port, tls, authority)
        except ssl.SSLCertVerificationError as exc:
            return f"verify failed: {getattr(exc, 'reason', None) or exc.args[0]}"

    other_ca = pki.ca_file(pki.other_ca)
    cases = [
        (simple, "up.test:443"),
        (simple, "other.test"),
        (replace(simple, sni="other.test", subject_alt_names=("up.test",)), ""),
        (replace(simple, sni="up.test", subject_alt_names=("no.test",)), ""),
        (replace(simple, ca_file=other_ca), "up.test"),
        (replace(simple, ca_file=other_ca, insecure_skip_verify=True), "up.test"),
        (mutual, "m.test"),
        (simple, "m.test"),
    ]

    async def scenario() -> list[str]:
        async with serving(store) as port:
            return [await outcome(port, tls, authority) for tls, authority in cases]

    results = run(scenario())
    assert results[0] == "up|ok|0"
    assert results[1].startswith("verify failed")
    assert "CERTIFICATE_VERIFY_FAILED" in results[1]
    assert results[2] == "up|ok|0"
    assert results[3] == "verify failed: upstream certificate matches none of ['no.test']"
    assert results[4] == "verify failed: CERTIFICATE_VERIFY_FAILED"
    assert results[5:] == ["up|ok|0", "m|ok|1", "m|server m requires a client certificate|0"]
