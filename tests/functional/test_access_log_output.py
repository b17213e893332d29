"""Functional: the access log of a real gateway on loopback: the fields that tie a line to the
upstream's time, and a log whose reader stalls (the gateway keeps serving, losses counted)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.functional.support import access_lines, capture_upstream, config, get, metric_samples

ROUTE = "  - route: [{destination: {host: up.svc}}]"


async def test_lines_give_the_upstream_time_and_the_client_headers(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """A proxied request logs how long the upstream took to answer (within the whole duration)
    and the client's X-Forwarded-For and User-Agent; a 404 NR logs no upstream time."""
    async with capture_upstream() as up:
        port = free_port()
        harness = await gateway(
            config(port, ROUTE, {"up.svc": [up.port]}, vs_hosts='["up.example"]'),
            access_log=str(tmp_path / "access.log"),
        )
        ok = await get(
            port,
            "/a",
            host="up.example",
            headers={"User-Agent": "probe/1", "X-Forwarded-For": "198.51.100.7"},
        )
        missing = await get(port, "/b", host="other.example")
    assert (ok.status, missing.status) == (200, 404)
    first, second = access_lines(harness)
    assert first["protocol"] == "HTTP/1.1"
    # (uvloop's clock has millisecond steps: a fast pod may take "0 ms")
    assert 0 <= first["upstream_service_time_ms"] <= first["duration_ms"]
    assert (first["user_agent"], first["x_forwarded_for"]) == ("probe/1", "198.51.100.7")
    assert (second["flags"], second["upstream_service_time_ms"]) == ("NR", None)


async def test_a_gateway_logging_to_an_unread_fifo_keeps_serving(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """``--access-log`` names a FIFO whose reader never reads: every request is still answered,
    and ``/stats/prometheus`` counts the lines that could not be written."""
    fifo = tmp_path / "access.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened so the gateway can open it
    try:
        async with capture_upstream() as up:
            port = free_port()
            harness = await gateway(
                config(port, ROUTE, {"up.svc": [up.port]}), access_log=str(fifo)
            )
            log = harness.gateway.runtime.access_log
            log.writer.max_pending = 8 << 10  # a small queue: the test needs few requests
            statuses = [(await get(port, f"/{i}")).status for i in range(600)]
            log.flush()
            samples = await metric_samples(harness.admin)
    finally:
        os.close(reader)
    assert statuses == [200] * 600
    dropped = [
        v for (name, _), v in samples.items() if name == "gateway_access_log_dropped_lines_total"
    ]
    assert dropped and dropped[0] > 0
    assert log.dropped_lines == dropped[0]
