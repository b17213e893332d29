"""Tests for gateway_core/server/tls.py: real TLS on 127.0.0.1 under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import socket
import ssl
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from gateway_core.server.tls import (
    MOZILLA_INTERMEDIATE_CIPHERS,
    CertificateReload,
    ServedCertificate,
    ServerTlsStore,
    TlsConfigError,
    cipher_list,
    san_matches,
    version_range,
)
from gateway_core.snapshot import (
    ServerSpec,
    TlsServerSpec,
)
from tests.gateway_core.server.tls_testkit import (
    CURL,
    MUTUAL,
    OPENSSL,
    OPTIONAL,
    SIMPLE,
    Pki,
    _replace_file,
    _serial,
    ask,
    pki,
    run,
    serving,
    talk,
)

__all__ = ["pki", "run"]  # fixtures, used by name

# --- pure settings ---------------------------------------------------------------------------


def test_cipher_list_defaults_to_mozilla_intermediate() -> None:
    """No cipher_suites means the 9 Mozilla intermediate TLS 1.2 suites, in Mozilla's order."""
    assert cipher_list(()) == MOZILLA_INTERMEDIATE_CIPHERS
    assert MOZILLA_INTERMEDIATE_CIPHERS[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    assert len(MOZILLA_INTERMEDIATE_CIPHERS) == 9


def test_cipher_list_keeps_istio_names_and_drops_unknown_and_duplicates() -> None:
    """Istio names keep their order; unknown, non-Istio and repeated names are ignored."""
    given = (
        "ECDHE-RSA-AES256-GCM-SHA384",
        "bogus",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    )
    assert cipher_list(given) == ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert cipher_list(("bogus",)) == MOZILLA_INTERMEDIATE_CIPHERS


def test_version_range_maps_istio_enums() -> None:
    """TLS_AUTO is 1.2..1.3, 1.0/1.1 minimums are raised to 1.2, inverted ranges are errors."""
    v = ssl.TLSVersion
    assert version_range("TLS_AUTO", "TLS_AUTO") == (v.TLSv1_2, v.TLSv1_3)
    assert version_range("TLSV1_3", "TLS_AUTO") == (v.TLSv1_3, v.TLSv1_3)
    assert version_range("TLSV1_0", "TLSV1_2") == (v.TLSv1_2, v.TLSv1_2)
    with pytest.raises(TlsConfigError, match="below the minimum"):
        version_range("TLSV1_2", "TLSV1_1")
    with pytest.raises(TlsConfigError, match="unknown"):
        version_range("SSLV3", "TLS_AUTO")


def test_sni_selection_order(pki: Pki) -> None:
    """Exact host, then longest wildcard suffix (any depth), then '*', else the first server."""
    servers = [
        pki.server("a", "a.test"),
        pki.server("wild", "*.wild.test"),
        pki.server("deep", "*.deep.wild.test", "ns/B.test"),
        pki.server("any", "*"),
    ]
    store = ServerTlsStore(servers)
    pick = {n: store.server_for_sni(n).name for n in ("a.test", "A.TEST.", "x.wild.test")}
    assert pick == {"a.test": "a", "A.TEST.": "a", "x.wild.test": "wild"}
    assert store.server_for_sni("y.x.wild.test").name == "wild"
    assert store.server_for_sni("z.deep.wild.test").name == "deep"
    assert store.server_for_sni("b.test").name == "deep"
    assert store.server_for_sni("wild.test").name == "any"
    assert store.server_for_sni(None).name == "any"
    without_catch_all = ServerTlsStore(servers[:3])
    assert without_catch_all.server_for_sni("unknown.test").name == "a"
    assert without_catch_all.server_for_sni(None).name == "a"


def test_listener_verify_mode_and_tickets_follow_the_servers(pki: Pki) -> None:
    """Verify mode: all MUTUAL → required, any (optional) mutual → optional, else none; tickets
    stay on only when every server trusts client certificates the same way."""
    simple, mutual = pki.server("s", "s.test"), pki.server("m", "m.test", mode=MUTUAL)
    optional = pki.server("o", "o.test", mode=OPTIONAL)
    other = pki.server("m2", "m2.test", mode=MUTUAL, ca_file=pki.ca_file(pki.other_ca))
    cases = [
        ([simple], ssl.CERT_NONE, 2),
        ([mutual], ssl.CERT_REQUIRED, 2),
        ([mutual, other], ssl.CERT_REQUIRED, 0),
        ([simple, mutual], ssl.CERT_OPTIONAL, 0),
        ([optional], ssl.CERT_OPTIONAL, 2),
    ]
    for servers, mode, tickets in cases:
        ctx = ServerTlsStore(servers).listener_context()
        assert (ctx.verify_mode, ctx.num_tickets) == (mode, tickets)
        assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert ctx.options & ssl.OP_NO_RENEGOTIATION


def test_update_is_all_or_nothing_and_keeps_the_listener_context(pki: Pki) -> None:
    """A server with missing files fails the update and leaves the old set serving."""
    store = ServerTlsStore([pki.server("a", "a.test")])
    listener = store.listener_context()
    broken = ServerSpec("b", ("b.test",), "rt", TlsServerSpec(SIMPLE, "/nope.crt", "/nope.key"))
    with pytest.raises(TlsConfigError, match="server b"):
        store.update([pki.server("a2", "a.test"), broken])
    assert store.server_for_sni("a.test").name == "a"
    store.update([pki.server("c", "c.test", mode=MUTUAL)])
    assert store.listener_context() is listener
    assert listener.verify_mode == ssl.CERT_REQUIRED
    assert store.server_for_sni("a.test").name == "c"


def test_invalid_server_settings_are_config_errors(pki: Pki) -> None:
    """MUTUAL without a CA, an expired certificate and an empty server list are refused."""
    spec = pki.server("m", "m.test", mode=MUTUAL)
    assert spec.tls is not None
    with pytest.raises(TlsConfigError, match="requires ca_certificates"):
        ServerTlsStore([replace(spec, tls=replace(spec.tls, ca_file=None))])
    far = dt.datetime(3001, 1, 1, tzinfo=dt.UTC)  # trustme leaves expire in 3000
    with pytest.raises(TlsConfigError, match="has expired"):
        ServerTlsStore([pki.server("a", "a.test")], now=lambda: far)
    with pytest.raises(TlsConfigError, match="at least one server"):
        ServerTlsStore([])
    passthrough = ServerSpec("p", ("p.test",), "rt", None)
    with pytest.raises(TlsConfigError, match="at least one server with TLS settings"):
        ServerTlsStore([passthrough])
    assert (
        ServerTlsStore([passthrough, pki.server("a", "a.test")]).server_for_sni("p.test").name
        == "a"
    )


def test_certificate_expiry_reports_not_after(pki: Pki) -> None:
    """certificate_expiry exposes each server's certificate file and notAfter for the metric."""
    spec = pki.server("a", "a.test")
    assert spec.tls is not None
    cert = x509.load_pem_x509_certificate(Path(spec.tls.cert_file).read_bytes())
    served = ServedCertificate(spec.tls.cert_file, cert.not_valid_after_utc)
    assert ServerTlsStore([spec]).certificate_expiry() == {"a": served}


def test_san_matches_dns_wildcards_ips_and_uris() -> None:
    """Certificate wildcards cover one label; IPs compare as addresses; URIs exactly."""
    cert = {
        "subjectAltName": (
            ("DNS", "*.lab"),
            ("DNS", "Tier2.Example"),
            ("IP Address", "127.0.0.1"),
            ("URI", "spiffe://lab/tier1"),
        )
    }
    assert san_matches(cert, ["tier2.lab"])
    assert not san_matches(cert, ["a.tier2.lab"])
    assert san_matches(cert, ["tier2.example."])
    assert san_matches(cert, ["127.0.0.1"])
    assert san_matches(cert, ["spiffe://lab/tier1"])
    assert not san_matches(cert, ["spiffe://lab/other", "10.0.0.1", "lab"])


# --- real handshakes ---------------------------------------------------------------------------


def test_sni_selects_the_served_certificate(pki: Pki, run: Callable[..., Any]) -> None:
    """Each SNI name gets its server's certificate; no SNI and unknown names get the first."""
    servers = [
        pki.server("a", "a.test"),
        pki.server("b", "b.test"),
        pki.server("wild", "*.wild.test"),
    ]
    serials = {s.name: _serial(Path(s.tls.cert_file)) for s in servers if s.tls}
    store = ServerTlsStore(servers)

    async def scenario() -> dict[str | None, tuple[str, int]]:
        seen: dict[str | None, tuple[str, int]] = {}
        async with serving(store) as port:
            for sni in ("a.test", "b.test", "x.wild.test", None, "unknown.test"):
                reply = await talk(port, sni, pki.client_ctx())
                seen[sni] = (reply.text, reply.cert.serial_number)
                await reply.close()
        return seen

    seen = run(scenario())
    assert seen == {
        "a.test": ("a|ok|0", serials["a"]),
        "b.test": ("b|ok|0", serials["b"]),
        "x.wild.test": ("wild|ok|0", serials["wild"]),
        None: ("a|ok|0", serials["a"]),
        "unknown.test": ("a|ok|0", serials["a"]),
    }


def test_tls11_refused_by_the_server(pki: Pki, run: Callable[..., Any]) -> None:
    """A client offering at most TLS 1.1 cannot complete a handshake (the same client with
    TLS 1.2 allowed can, so the refusal is the server's)."""
    store = ServerTlsStore([pki.server("a", "a.test")])
    old, legacy = pki.client_ctx(), pki.client_ctx()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = legacy.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    legacy.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def scenario() -> list[str]:
        async with serving(store) as port:
            return [await ask(port, "a.test", old), await ask(port, "a.test", legacy)]

    assert run(scenario()) == ["refused", "a|ok|0"]


def test_mutual_listener_requires_a_client_cert_from_its_ca(
    pki: Pki, run: Callable[..., Any]
) -> None:
    """All-MUTUAL listener: no certificate and a foreign CA's certificate fail the handshake."""
    store = ServerTlsStore([pki.server("m", "m.test", mode=MUTUAL)])

    async def scenario() -> list[str]:
        async with serving(store) as port:
            return [
                await ask(port, "m.test", pki.client_ctx()),
                await ask(port, "m.test", pki.client_ctx(pki.other_ca)),
                await ask(port, "m.test", pki.client_ctx(pki.ca)),
            ]

    assert run(scenario()) == ["refused", "refused", "m|ok|1"]


def test_mixed_listener_enforces_mutual_after_the_handshake(
    pki: Pki, run: Callable[..., Any]
) -> None:
    """SIMPLE + MUTUAL + OPTIONAL_MUTUAL on one listener: admit refuses a MUTUAL connection
    without a certificate; SIMPLE accepts a client that sends one anyway."""
    store = ServerTlsStore(
        [
            pki.server("s", "s.test"),
            pki.server("m", "m.test", mode=MUTUAL),
            pki.server("o", "o.test", mode=OPTIONAL),
        ]
    )

    async def scenario() -> list[str]:
        async with serving(store) as port:
            bare, with_cert = pki.client_ctx(), pki.client_ctx(pki.ca)
            return [
                await ask(port, "m.test", bare),
                await ask(port, "m.test", with_cert),
                await ask(port, "m.test", pki.client_ctx(pki.other_ca)),
                await ask(port, "s.test", bare),
                await ask(port, "s.test", with_cert),
                await ask(port, "o.test", bare),
                await ask(port, "o.test", with_cert),
            ]

    assert run(scenario()) == [
        "m|server m requires a client certificate|0",
        "m|ok|1",
        "refused",
        "s|ok|0",
        "s|ok|1",
        "o|ok|0",
        "o|ok|1",
    ]


def test_client_ca_store_follows_the_sni_selected_server(pki: Pki, run: Callable[..., Any]) -> None:
    """Two MUTUAL servers with different CAs: each accepts only its own CA's client certs."""
    store = ServerTlsStore(
        [
            pki.server("one", "one.test", mode=MUTUAL),
            pki.server("two", "two.test", mode=MUTUAL, ca_file=pki.ca_file(pki.other_ca)),
        ]
    )

    async def scenario() -> list[str]:
        async with serving(store) as port:
            ours, theirs = pki.client_ctx(pki.ca), pki.client_ctx(pki.other_ca)
            return [
                await ask(port, "one.test", ours),
                await ask(port, "one.test", theirs),
                await ask(port, "two.test", ours),
                await ask(port, "two.test", theirs),
            ]

    assert run(scenario()) == ["one|ok|1", "refused", "refused", "two|ok|1"]


def _memory_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> ssl.SSLObject:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="y.test")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(10):
        for i, (obj, src, dst) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    obj.do_handshake()
                    done[i] = True
            dst.write(src.read())
        if all(done):
            return server
    raise AssertionError("handshake did not finish")


def test_openssl_verifies_against_the_swapped_context_store(pki: Pki) -> None:
    """OpenSSL fact the design relies on: after SSL_set_SSL_CTX the new context's CA store (not
    the listener's) verifies the client certificate, while the listener's verify mode applies."""
    x_ca, y_ca = pki.other_ca, pki.ca
    listener = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    listener.verify_mode = ssl.CERT_REQUIRED
    x_ca.configure_trust(listener)
    selected = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    y_ca.issue_cert("y.test").configure_cert(selected)
    y_ca.configure_trust(selected)

    def swap(conn: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        conn.context = selected

    listener.sni_callback = swap
    accepted = _memory_handshake(listener, pki.client_ctx(y_ca))
    der = accepted.getpeercert(binary_form=True)
    assert der is not None
    issuer = x509.load_pem_x509_certificate(y_ca.cert_pem.bytes()).subject
    assert x509.load_der_x509_certificate(der).issuer == issuer
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        _memory_handshake(listener, pki.client_ctx(x_ca))


def test_admit_checks_version_ciphers_and_client_sans(pki: Pki, run: Callable[..., Any]) -> None:
    """Versions are the listener's union, so admit refuses TLS 1.2 on a TLS 1.3-only server; the
    cipher list is the selected server's own (handshake fails); client SANs are checked."""
    store = ServerTlsStore(
        [
            pki.server("v13", "v13.test", min_version="TLSV1_3"),
            pki.server("gcm256", "gcm256.test", cipher_suites=("ECDHE-ECDSA-AES256-GCM-SHA384",)),
            pki.server("san", "san.test", mode=MUTUAL, subject_alt_names=("tier1-gateway",)),
        ]
    )
    tls12 = pki.client_ctx()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    aes128 = pki.client_ctx()
    aes128.maximum_version = ssl.TLSVersion.TLSv1_2
    aes128.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")

    async def scenario() -> list[str]:
        async with serving(store) as port:
            return [
                await ask(port, "v13.test", tls12),
                await ask(port, "v13.test", pki.client_ctx()),
                await ask(port, "gcm256.test", aes128),
                await ask(port, "gcm256.test", tls12),
                await ask(port, "san.test", aes128),
                await ask(port, "san.test", pki.client_ctx(pki.ca, cn="tier1-gateway")),
                await ask(port, "san.test", pki.client_ctx(pki.ca, cn="intruder")),
            ]

    assert run(scenario()) == [
        "v13|server v13 does not allow TLSv1.2|0",
        "v13|ok|0",
        "refused",
        "gcm256|ok|0",
        "san|server san requires a client certificate|0",
        "san|ok|1",
        "san|server san: client certificate matches none of ['tier1-gateway']|1",
    ]


def test_rotation_serves_the_new_certificate_and_keeps_old_connections(
    pki: Pki, run: Callable[..., Any]
) -> None:
    """After rewriting the files, reload_if_changed makes new handshakes serve the new serial; a
    connection made before keeps working; a bad file is reported once and the old cert stays."""
    spec = pki.server("a", "a.test")
    assert spec.tls is not None
    crt = Path(spec.tls.cert_file)
    store = ServerTlsStore([spec])
    old_serial = _serial(crt)

    async def scenario() -> None:
        async with serving(store) as port:
            before = await talk(port, "a.test", pki.client_ctx())
            assert before.cert.serial_number == old_serial
            assert store.reload_if_changed() == CertificateReload()
            _replace_file(crt, b"-----BEGIN CERTIFICATE-----\ngarbage\n")
            failed = store.reload_if_changed()
            assert (failed.reloaded, len(failed.errors)) == ((), 1)
            assert "keeping the previous certificate: server a" in failed.errors[0]
            assert store.reload_if_changed() == CertificateReload()
            still = await talk(port, "a.test", pki.client_ctx())
            assert still.cert.serial_number == old_serial
            pki.issue("a", "a.test")
            assert store.reload_if_changed() == CertificateReload(reloaded=("a",))
            after = await talk(port, "a.test", pki.client_ctx())
            assert after.cert.serial_number == _serial(crt) != old_serial
            before.writer.write(b"ping\n")
            assert await before.reader.readline() == b"echo ping\n"
            for reply in (before, still, after):
                await reply.close()

    run(scenario())


def test_rotation_rejects_a_key_that_does_not_match(pki: Pki) -> None:
    """A new certificate without its new key is refused until the key arrives."""
    spec = pki.server("a", "a.test")
    assert spec.tls is not None
    store = ServerTlsStore([spec])
    fresh = pki.ca.issue_cert("a.test")
    _replace_file(Path(spec.tls.cert_file), fresh.cert_chain_pems[0].bytes())
    errors = store.reload_if_changed().errors
    assert len(errors) == 1
    assert "KEY_VALUES_MISMATCH" in errors[0].upper()
    _replace_file(Path(spec.tls.key_file), fresh.private_key_pem.bytes())
    assert store.reload_if_changed() == CertificateReload(reloaded=("a",))
    assert (
        store.certificate_expiry()["a"].not_after
        == x509.load_pem_x509_certificate(fresh.cert_chain_pems[0].bytes()).not_valid_after_utc
    )


def _sync_connect(
    port: int, sni: str, ctx: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[str, ssl.SSLSession | None, bool]:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname=sni, session=session) as tls,
    ):
        tls.sendall(b"hello\n")
        try:
            text = tls.recv(200).decode().strip() or "refused"
        except (ssl.SSLError, ConnectionError):
            text = "refused"
        return text, tls.session, bool(tls.session_reused)


def test_tls13_resumption_cannot_cross_client_ca_boundaries(
    pki: Pki, run: Callable[..., Any]
) -> None:
    """Tickets stay on where all servers trust alike (resumption works) and are off otherwise,
    so a session verified by one CA is never resumed on a server trusting another."""
    same = ServerTlsStore([pki.server("a", "a.test"), pki.server("b", "b.test")])
    split = ServerTlsStore(
        [
            pki.server("one", "one.test", mode=MUTUAL),
            pki.server("two", "two.test", mode=MUTUAL, ca_file=pki.ca_file(pki.other_ca)),
        ]
    )

    async def resumes(
        store: ServerTlsStore, first: str, second: str, ctx: ssl.SSLContext
    ) -> tuple[str, str, bool]:
        async with serving(store) as port:
            text, session, _ = await asyncio.to_thread(_sync_connect, port, first, ctx, None)
            again, _, reused = await asyncio.to_thread(_sync_connect, port, second, ctx, session)
            return text, again, reused

    assert run(resumes(same, "a.test", "b.test", pki.client_ctx())) == ("a|ok|0", "b|ok|0", True)
    crossed = run(resumes(split, "one.test", "two.test", pki.client_ctx(pki.ca)))
    assert crossed == ("one|ok|1", "refused", False)


async def _exec(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(errors="replace")


def _s_client_summary(output: str) -> tuple[str, str]:
    found = re.search(r"New, (\S+), Cipher is (\S+)", output)
    return (found.group(1), found.group(2)) if found else ("", "")


@pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")
def test_openssl_s_client_sees_the_intermediate_profile(pki: Pki) -> None:
    """s_client: right cert per SNI, TLS 1.2/1.3 with AEAD suites, TLS 1.1 and CBC suites
    refused, no compression, secure renegotiation, ALPN http/1.1."""
    servers = [pki.server("a", "a.test"), pki.server("b", "b.test")]
    store = ServerTlsStore(servers)
    assert OPENSSL is not None

    async def scenario() -> dict[str, tuple[int, str]]:
        async with serving(store) as port:
            base = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-alpn", "http/1.1"]
            a12 = [*base, "-servername", "a.test", "-tls1_2"]
            runs = {
                "b13": [*base, "-servername", "b.test", "-tls1_3"],
                "a12": a12,
                "tls11": [*base, "-servername", "a.test", "-tls1_1", "-cipher", "ALL@SECLEVEL=0"],
                "cbc-sha1": [*a12, "-cipher", "ECDHE-ECDSA-AES128-SHA"],
                "cbc-sha384": [*a12, "-cipher", "ECDHE-ECDSA-AES256-SHA384"],
            }
            return {k: await _exec(*argv) for k, argv in runs.items()}

    with asyncio.Runner() as runner:
        out = runner.run(scenario())
    rc, b13 = out["b13"]
    assert rc == 0
    assert _s_client_summary(b13)[0] == "TLSv1.3"
    served = x509.load_pem_x509_certificate(b13[b13.index("-----BEGIN") :].encode())
    assert served.serial_number == _serial(pki.root / "b.crt")
    assert "ALPN protocol: http/1.1" in b13
    rc, a12 = out["a12"]
    assert rc == 0
    version, cipher = _s_client_summary(a12)
    assert (version, cipher in MOZILLA_INTERMEDIATE_CIPHERS) == ("TLSv1.2", True)
    assert "Compression: NONE" in a12
    assert "Secure Renegotiation IS supported" in a12
    for refused in ("tls11", "cbc-sha1", "cbc-sha384"):
        assert out[refused][0] != 0, refused
        assert _s_client_summary(out[refused][1])[1] == "(NONE)", refused


@pytest.mark.skipif(CURL is None, reason="curl binary not installed")
def test_curl_sni_and_client_certificate(pki: Pki) -> None:
    """curl with --resolve gets each server by SNI; a MUTUAL server accepts curl's --cert."""
    store = ServerTlsStore([pki.server("a", "a.test"), pki.server("m", "m.test", mode=MUTUAL)])
    crt, key = pki.issue("curl-client", "curl-client")
    ca = pki.ca_file()
    assert CURL is not None

    async def scenario() -> list[tuple[int, str]]:
        async with serving(store) as port:

            def curl(host: str, *extra: str) -> list[str]:
                resolve = f"{host}:{port}:127.0.0.1"
                return [
                    CURL,
                    "-sS",
                    "--http1.1",
                    "--cacert",
                    ca,
                    "--resolve",
                    resolve,
                    *extra,
                    f"https://{host}:{port}/",
                ]

            return [
                await _exec(*curl("a.test")),
                await _exec(*curl("m.test", "--cert", str(crt), "--key", str(key))),
                await _exec(*curl("m.test")),
            ]

    with asyncio.Runner() as runner:
        results = runner.run(scenario())
    assert results[0] == (0, "a|ok|0")
    assert results[1] == (0, "m|ok|1")
    assert results[2] == (0, "m|server m requires a client certificate|0")
