"""Functional: principals, namespaces and ``connection.sni`` from a MUTUAL TLS handshake.

At an ingress gateway there are no mesh peers: a principal exists only when the client's
verified certificate carries a SPIFFE URI SAN (``spiffe://<td>/ns/<ns>/sa/<sa>``), over HTTP/1.1
and HTTP/2 alike. A certificate without one has no principal, so ``principals`` never match it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port
from tests.functional.h2client import H2Client
from tests.functional.support import lab_certs, read_response, tls_gateway_yaml

POLICY = """---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: shop-only, namespace: istio-system}
spec:
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/shop/sa/*"], notNamespaces: [test]}
    when:
    - {key: connection.sni, values: ["*.example.com"]}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lab_certs(tmp_path_factory.mktemp("pki"))


def spiffe_client(pki: Path, out: Path, uri: str | None) -> ssl.SSLContext:
    """A client context with a certificate from the lab CA whose SAN is ``uri`` (or a DNS
    name only), trusting the lab CA; hostname checks off so any SNI can be sent."""
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san: list[x509.GeneralName] = [x509.DNSName("client.test")]
    if uri is not None:
        san.append(x509.UniformResourceIdentifier(uri))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(out / "tls.crt", out / "tls.key")
    return ctx


async def status_h1(port: int, ctx: ssl.SSLContext, sni: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: mtls.example.com\r\n\r\n")
        resp = await read_response(reader)
        if resp.status == 403:
            assert resp.body == b"RBAC: access denied"
        return resp.status
    finally:
        writer.close()


async def status_h2(port: int, ctx: ssl.SSLContext, sni: str) -> int:
    client = await H2Client.connect(port, tls=ctx, sni=sni)
    try:
        response = await client.response(client.request("GET", "mtls.example.com", "/"))
        return response.status
    finally:
        await client.close()


@pytest.mark.parametrize("status", [status_h1, status_h2], ids=["http1", "http2"])
async def test_spiffe_principal_namespace_and_sni(
    gateway: Callable[..., Any], pki: Path, tmp_path: Path, status: Any
) -> None:
    http_port, https_port, mtls_port = free_port(), free_port(), free_port()
    yaml_text = tls_gateway_yaml(http_port, https_port, mutual_port=mtls_port) + POLICY
    await gateway(yaml_text, cert_dir=str(pki))
    shop = spiffe_client(pki, tmp_path / "shop", "spiffe://cluster.local/ns/shop/sa/web")
    other = spiffe_client(pki, tmp_path / "dev", "spiffe://cluster.local/ns/dev/sa/web")
    plain = spiffe_client(pki, tmp_path / "plain", None)
    assert await status(mtls_port, shop, "bookinfo.example.com") == 200
    assert await status(mtls_port, other, "bookinfo.example.com") == 403
    assert await status(mtls_port, plain, "bookinfo.example.com") == 403
    # The principal matches, the SNI name does not.
    assert await status(mtls_port, shop, "localhost") == 403
