"""Tests: the TLS metrics on /stats/prometheus of a real gateway serving lab certificates.

``gateway_tls_certificate_expiry_seconds`` gives each served certificate's seconds until its
``notAfter``; ``gateway_tls_reloads_total{result="success"}`` counts the server contexts rebuilt
after the files changed on disk (``python -m certs.generate --rotate``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from certs.generate import generate_lab_certs, rotate_credential
from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import wait_for
from tests.helpers import GatewayHarness

CREDENTIAL = "httpbin-credential"
Labels = tuple[tuple[str, str], ...]


async def scrape(harness: GatewayHarness) -> tuple[float, dict[str, dict[Labels, float]], float]:
    """(wall time before, {sample name: {labels: value}}, wall time after) of one scrape."""
    before = time.time()
    async with aiohttp.ClientSession() as s, s.get(harness.admin + "/stats/prometheus") as r:
        assert r.status == 200
        text = await r.text()
    after = time.time()
    samples: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return before, samples, after


def not_after(cert_file: Path) -> float:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return cert.not_valid_after_utc.timestamp()


def reloads(samples: dict[str, dict[Labels, float]], result: str) -> float:
    return samples["gateway_tls_reloads_total"][(("result", result), ("tier", "tier2"))]


async def test_expiry_gauge_and_reload_counter_follow_a_rotation(
    tmp_path: Path, gateway: Callable[..., Any]
) -> None:
    """The expiry gauge matches the served certificate's notAfter, labelled with its listener,
    server and file; after a rotation the success counter rises and the gauge follows."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    port = free_port()
    yaml_text = config(
        port,
        '  - directResponse: {status: 200, body: {string: "ok"}}',
        {},
        vs_hosts="[httpbin.example.com]",
        gateway_hosts="[httpbin.example.com]",
        credential=CREDENTIAL,
    )
    harness: GatewayHarness = await gateway(yaml_text, cert_dir=str(certs))
    cert_file = certs / CREDENTIAL / "tls.crt"
    labels = (
        ("cert_file", str(cert_file)),
        ("listener", f"127.0.0.1_{port}"),
        ("server", "default.gw.0"),
        ("tier", "tier2"),
    )

    before, samples, after = await scrape(harness)
    assert list(samples["gateway_tls_certificate_expiry_seconds"]) == [labels]
    value = samples["gateway_tls_certificate_expiry_seconds"][labels]
    assert not_after(cert_file) - after - 1 <= value <= not_after(cert_file) - before + 1
    assert value > 300 * 86400  # a fresh lab leaf lives 365 days
    assert reloads(samples, "success") == 0

    # Re-issued as if two days ago: a new key and serial, and a notAfter two days earlier.
    rotated = rotate_credential(certs, CREDENTIAL, now=dt.datetime.now(dt.UTC) - dt.timedelta(2))
    rotated_not_after = rotated.not_valid_after_utc.timestamp()
    assert abs(rotated_not_after - not_after(cert_file)) < 1

    async def counted() -> bool:
        return reloads((await scrape(harness))[1], "success") >= 1

    await wait_for(counted, 10, "gateway_tls_reloads_total{result='success'} to count")
    before, samples, after = await scrape(harness)
    assert reloads(samples, "success") == 1
    value = samples["gateway_tls_certificate_expiry_seconds"][labels]
    assert rotated_not_after - after - 1 <= value <= rotated_not_after - before + 1
