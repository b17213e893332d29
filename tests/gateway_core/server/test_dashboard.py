"""Tests: the admin dashboard's endpoints on a real gateway (``/``, ``/dashboard/state``,
``/dashboard/events``, ``/help``): traffic split and rates from the live counters, recent errors
with their response flags, reload results with diagnostics, host health, certificates, and the
Server-Sent Events stream (batched, and closed when the gateway stops)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from certs.generate import generate_lab_certs
from gateway_core.server.dashboard import MIN_SAMPLE_GAP
from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import wait_for
from tests.helpers import GatewayHarness

SPLIT_RULES = """  - match: [{uri: {prefix: /echo}}]
    route:
    - {destination: {host: app.local, subset: v1}, weight: 75}
    - {destination: {host: app.local, subset: v2}, weight: 25}
  - match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: dead.local}}]"""
SUBSETS = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: app}
spec:
  host: app.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {name: app}
spec:
  host: app.local
  healthCheck: {path: /healthz, interval: 300ms, timeout: 250ms, unhealthyThreshold: 3,
                healthyThreshold: 1}
"""
V1 = "outbound|80|v1|app.local"
V2 = "outbound|80|v2|app.local"


async def _split_gateway(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> tuple[GatewayHarness, int, list[Any]]:
    handles = [await pods("echo", pod=f"p{i}") for i in range(2)]
    port = free_port()
    yaml_text = config(
        port,
        SPLIT_RULES,
        {"app.local": [h.port for h in handles], "dead.local": [free_port()]},
        vs_hosts="[app.example]",
        labels={"app.local": [{"version": "v1"}, {"version": "v2"}]},
        extra=SUBSETS,
    )
    harness: GatewayHarness = await gateway(yaml_text)
    return harness, port, handles


async def _get(url: str, **kwargs: Any) -> tuple[int, str, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, **kwargs) as r:
        return r.status, r.content_type, await r.text(), dict(r.headers)


_LAST_SAMPLE: dict[int, float] = {}


async def _state(harness: GatewayHarness) -> dict[str, Any]:
    """A new sample: the endpoint serves a sample younger than ``MIN_SAMPLE_GAP`` again by
    design (streams share samples), so a call that soon after the last one waits it out."""
    since = time.monotonic() - _LAST_SAMPLE.get(id(harness), float("-inf"))
    if since < MIN_SAMPLE_GAP + 0.02:
        await asyncio.sleep(MIN_SAMPLE_GAP + 0.02 - since)
    _LAST_SAMPLE[id(harness)] = time.monotonic()
    status, content_type, text, _ = await _get(harness.admin + "/dashboard/state")
    assert (status, content_type) == (200, "application/json")
    doc: dict[str, Any] = json.loads(text)
    return doc


async def _send(port: int, path: str, count: int, host: str = "app.example") -> list[int]:
    statuses = []
    async with aiohttp.ClientSession() as s:
        for _ in range(count):
            async with s.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as r:
                await r.read()
                statuses.append(r.status)
    return statuses


def _cluster(doc: dict[str, Any], key: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in doc["clusters"] if c["key"] == key)
    return found


async def test_page_and_its_files_come_from_the_admin_port_only(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """``/`` is the HTML page; its script and style are served beside it; every reference in
    the page is same-origin, and the Content-Security-Policy forbids any other origin."""
    harness, _, _ = await _split_gateway(pods, gateway)
    status, content_type, html, headers = await _get(harness.admin + "/")
    assert (status, content_type) == (200, "text/html")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert "/dashboard.js" in refs and "/dashboard.css" in refs
    assert all(ref.startswith("/") or ref.startswith("data:") for ref in refs), refs
    for path, kind in (("/dashboard.js", "application/javascript"), ("/dashboard.css", "text/css")):
        status, content_type, text, _ = await _get(harness.admin + path)
        assert (status, content_type) == (200, kind)
        assert "http://" not in text and "https://" not in text, path
    _, _, script, _ = await _get(harness.admin + "/dashboard.js")
    assert "/dashboard/events" in script and "/explain?" in script


async def test_split_and_rates_follow_the_cluster_counters(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """Between two samples, each cluster's rate and share come from its response counter: the
    75/25 route shows as the two subsets' split of the app.local destination."""
    harness, port, _ = await _split_gateway(pods, gateway)
    before = await _state(harness)
    assert before["rate"]["requests_per_second"] is None  # one sample: no rate yet
    statuses = await _send(port, "/echo", 200)
    assert statuses == [200] * 200
    after = await _state(harness)
    v1, v2 = _cluster(after, V1), _cluster(after, V2)
    d1 = v1["total"] - _cluster(before, V1)["total"]
    d2 = v2["total"] - _cluster(before, V2)["total"]
    assert d1 + d2 == 200 and 110 <= d1 <= 190, (d1, d2)
    window = after["rate"]["window"]
    assert window > 0
    assert v1["rps"] == pytest.approx(d1 / window, rel=0.01)
    assert v1["destination_share"] == round(100 * d1 / 200, 1)
    assert v2["destination_share"] == round(100 * d2 / 200, 1)
    assert after["rate"]["requests_total"] - before["rate"]["requests_total"] == 200
    assert after["rate"]["requests_per_second"] == pytest.approx(200 / window, rel=0.01)
    (app,) = [d for d in after["destinations"] if d["service"] == "app.local"]
    assert sorted(app["clusters"]) == sorted([V1, V2])
    assert app["share"] == 100.0
    hosts = {h["port"]: h for c in (v1, v2) for h in c["hosts"]}
    assert sum(h["total_requests"] for h in hosts.values()) == d1 + d2
    assert [p["load"] for p in v1["priorities"]] == [100]
    assert all(h["state"] == "healthy" and h["locality"] is not None for h in hosts.values())


async def test_recent_errors_carry_status_flags_and_target(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """A request no route matches (404 NR) and one to a dead endpoint (503 UF) are the newest
    errors, with their path, cluster and upstream host; successes are not listed."""
    harness, port, _ = await _split_gateway(pods, gateway)
    await _send(port, "/echo", 3)
    assert await _send(port, "/nothing?token=secret", 1, host="unknown.example") == [404]
    assert await _send(port, "/dead", 1) == [503]
    doc = await _state(harness)
    newest, older = doc["errors"][:2]
    assert len(doc["errors"]) == 2
    assert (newest["status"], newest["flags"], newest["path"]) == (503, "UF", "/dead")
    assert newest["cluster"] == "outbound|80||dead.local"
    assert newest["upstream_host"].startswith("127.0.0.1:")
    assert (older["status"], older["flags"], older["path"]) == (404, "NR", "/nothing")
    assert older["authority"] == "unknown.example" and older["cluster"] is None
    assert 0 <= older["age"] < 10
    assert doc["response_flags"] == {"NR": 1, "UF": 1}


async def test_reload_results_show_the_rejected_files_diagnostics(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """A rejected reload keeps the version and lists the errors with their file; the next good
    one shows as accepted with the new version."""
    harness, _, _ = await _split_gateway(pods, gateway)
    first = await _state(harness)
    assert first["reload"]["accepted"] is True and first["reload"]["version"] == first["version"]
    good = harness.config_file.read_text()
    harness.write_config(good.replace("weight: 75", "weight: -5"))
    async with aiohttp.ClientSession() as s, s.post(harness.admin + "/reload") as r:
        assert r.status == 400
    doc = await _state(harness)
    reload = doc["reload"]
    assert reload["accepted"] is False and reload["version"] == first["version"]
    assert doc["version"] == first["version"]
    assert any("config.yaml" in d and "weight" in d for d in reload["diagnostics"]), reload
    assert doc["reloads"] == {"success": 1, "rejected": 1}
    harness.write_config(good)  # undone: the files compile to the version serving
    async with aiohttp.ClientSession() as s, s.post(harness.admin + "/reload") as r:
        assert r.status == 200
    doc = await _state(harness)
    assert (doc["reload"]["accepted"], doc["reload"]["changed"]) == (True, False)
    assert doc["reload"]["diagnostics"] == []
    async with aiohttp.ClientSession() as s, s.get(harness.admin + "/config_dump") as r:
        assert (await r.json())["last_reload_error"] is None
    harness.write_config(good.replace("weight: 75", "weight: 70").replace("25}", "30}"))
    async with aiohttp.ClientSession() as s, s.post(harness.admin + "/reload") as r:
        assert r.status == 200
    doc = await _state(harness)
    assert doc["reload"]["accepted"] is True and doc["reload"]["diagnostics"] == []
    assert doc["reload"]["version"] == doc["version"] != first["version"]
    assert doc["reload"]["at"] >= first["reload"]["at"]


async def test_host_state_follows_its_health_checks(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """A pod whose health check fails shows as failing at its first failed probe, unhealthy
    once the threshold is reached, and healthy again after it passes."""
    harness, _, handles = await _split_gateway(pods, gateway)
    pod = handles[1]
    states: list[str] = []

    async def state_is(wanted: str) -> bool:
        doc = await _state(harness)
        (host,) = [h for h in _cluster(doc, V2)["hosts"] if h["port"] == pod.port]
        if not states or states[-1] != host["state"]:
            states.append(host["state"])
        return bool(host["state"] == wanted)

    await wait_for(lambda: state_is("healthy"), 5, "the v2 pod healthy")
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://{pod.address}/admin/ready?value=false") as r:
            assert r.status == 200
        await wait_for(lambda: state_is("unhealthy"), 8, "the v2 pod unhealthy")
        async with s.post(f"http://{pod.address}/admin/ready?value=true") as r:
            assert r.status == 200
    await wait_for(lambda: state_is("healthy"), 5, "the v2 pod healthy again")
    assert states[0] == "healthy" and states[-1] == "healthy"
    assert "unhealthy" in states
    assert states.index("failing") < states.index("unhealthy"), states


async def test_listeners_show_the_served_certificate_expiry(
    tmp_path: Path, gateway: Callable[..., Any]
) -> None:
    """An HTTPS listener's server shows its certificate file and notAfter, as loaded."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    port = free_port()
    yaml_text = config(
        port,
        '  - directResponse: {status: 200, body: {string: "ok"}}',
        {},
        vs_hosts="[httpbin.example.com]",
        gateway_hosts="[httpbin.example.com]",
        credential="httpbin-credential",
    )
    harness: GatewayHarness = await gateway(yaml_text, cert_dir=str(certs))
    doc = await _state(harness)
    (listener,) = doc["listeners"]
    assert (listener["port"], listener["protocol"]) == (port, "HTTPS")
    (server,) = listener["servers"]
    cert = server["certificate"]
    assert server["tls_mode"] == "SIMPLE" and server["hosts"] == ["httpbin.example.com"]
    not_after = _not_after(Path(cert["file"]))
    assert cert["not_after"] == not_after
    assert abs(cert["expires_in_seconds"] - (not_after - time.time())) < 60


def _not_after(cert_file: Path) -> float:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return cert.not_valid_after_utc.timestamp()


async def _events(url: str) -> AsyncIterator[tuple[float, dict[str, Any]]]:
    """(arrival time, document) of each ``state`` event of the stream at ``url``."""
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        event = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "state":
                yield time.monotonic(), json.loads(line[6:])


async def test_event_stream_sends_batched_updates_that_follow_traffic(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """One event per interval whatever the traffic; the rate and totals follow the requests."""
    harness, port, _ = await _split_gateway(pods, gateway)
    stream = _events(harness.admin + "/dashboard/events?interval=0.2")
    arrivals: list[float] = []
    sent = False
    seen: dict[str, Any] = {}

    async def follow() -> None:
        nonlocal sent
        async for at, doc in stream:
            arrivals.append(at)
            if not sent:
                sent = True
                seen["start"] = doc["rate"]["requests_total"]
                await _send(port, "/echo", 100)
            elif doc["rate"]["requests_total"] - seen["start"] == 100:
                seen["rps"] = doc["rate"]["requests_per_second"]
                seen["split"] = {c["key"]: c["total"] for c in doc["clusters"]}
                return

    await asyncio.wait_for(follow(), 10)
    await stream.aclose()
    assert seen["rps"] is not None and seen["rps"] > 0
    assert seen["split"][V1] + seen["split"][V2] == 100
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # 100 requests produced no extra events: each follows the previous by about an interval.
    assert all(gap > 0.1 for gap in gaps[1:]), gaps


async def test_open_streams_end_when_the_gateway_stops(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """An open page never holds up a stop: the stream ends as the admin server shuts down."""
    harness, _, _ = await _split_gateway(pods, gateway)
    stream = _events(harness.admin + "/dashboard/events")
    await asyncio.wait_for(anext(stream), 5)
    started = time.monotonic()
    await asyncio.wait_for(harness.close(), 10)
    assert time.monotonic() - started < 5
    with pytest.raises((StopAsyncIteration, aiohttp.ClientError)):
        await asyncio.wait_for(anext(stream), 5)


async def test_help_lists_every_route_of_the_admin_router(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """``/help`` has one line per route (HEAD aside) with its description; ``?format=json``."""
    harness, _, _ = await _split_gateway(pods, gateway)
    admin = harness.gateway._admin
    assert admin is not None
    routes = {
        (r.method, r.resource.canonical)
        for r in admin.app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    status, content_type, text, _ = await _get(harness.admin + "/help")
    assert (status, content_type) == (200, "text/plain")
    lines = text.splitlines()[1:]
    listed = {(ln.split()[0], ln.split()[1]) for ln in lines}
    assert listed == routes
    assert len(lines) == len(routes)
    assert {("GET", "/"), ("GET", "/dashboard/events"), ("POST", "/reload")} <= listed
    _, _, body, _ = await _get(harness.admin + "/help?format=json")
    described = {(e["method"], e["path"]): e["description"] for e in json.loads(body)}
    assert all(described.values()), described
    assert described[("GET", "/clusters")].startswith("live hosts")
    assert described[("GET", "/")] == "the live dashboard page (open it in a browser)"


async def test_state_is_indented_with_pretty(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    harness, _, _ = await _split_gateway(pods, gateway)
    _, _, compact, _ = await _get(harness.admin + "/dashboard/state")
    _, _, pretty, _ = await _get(harness.admin + "/dashboard/state?pretty")
    assert "\n" not in compact.strip() and pretty.count("\n") > 20
    assert json.loads(pretty)["version"] == json.loads(compact)["version"]
