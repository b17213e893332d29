"""Observability: one JSON access-log line per request, batched, valid JSON for any input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway_core.observability.access_log import AccessLog


def _record(log: AccessLog, **overrides: object) -> None:
    fields: dict[str, object] = {
        "method": b"GET",
        "authority": b"bookinfo.example.com:8080",
        "path": b"/productpage?u=1",
        "status": 200,
        "flags": "-",
        "duration": 0.0034,
        "upstream_host": "127.0.1.1:8443",
        "cluster": "outbound|8443|cluster-1|tier2.lab",
        "route": "tier1/bookinfo/http[0]",
        "attempts": 1,
        "bytes_received": 0,
        "bytes_sent": 4294,
        "request_id": b"0f6c",
        "client": "127.0.0.1",
    }
    fields.update(overrides)
    log.record(**fields)  # type: ignore[arg-type]


async def test_lines_are_json_with_every_field(tmp_path: Path) -> None:
    """Each request gives one line carrying the documented fields with their values."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    _record(log)
    _record(log, status=404, flags="NR", upstream_host="-", cluster="-")
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [entry["status"] for entry in lines] == [200, 404]
    first = lines[0]
    assert first["method"] == "GET"
    assert first["path"] == "/productpage?u=1"
    assert first["duration_ms"] == 3.4
    assert first["cluster"] == "outbound|8443|cluster-1|tier2.lab"
    assert lines[1]["flags"] == "NR"


async def test_hostile_bytes_still_give_valid_json(tmp_path: Path) -> None:
    """Quotes, backslashes, control and non-ASCII bytes in request fields stay valid JSON."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    _record(log, path=b'/a"b\\c\x01\xe9', authority=b'evil"\n')
    log.close()
    entry = json.loads(path.read_text())
    assert entry["path"] == '/a"b\\c\x01é'
    assert entry["authority"] == 'evil"\n'


async def test_lines_are_flushed_in_batches(tmp_path: Path) -> None:
    """Lines are written together after the flush interval, not one write per request."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    for _ in range(3):
        _record(log)
    assert path.read_text() == ""
    await asyncio.sleep(0.1)
    assert len(path.read_text().splitlines()) == 3
    log.close()


def test_off_writes_nothing() -> None:
    """``--access-log off`` disables the log entirely."""
    log = AccessLog("off")
    _record(log)
    assert not log.enabled


async def test_repeated_and_varying_values_are_logged_exactly(tmp_path: Path) -> None:
    """Quoted forms of repeating fields are remembered: many distinct authorities (more
    than the memo holds, and longer than it keeps) and repeats each log their own value."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    authorities = [f"h{i}.example.com".encode() for i in range(5000)]
    authorities += [b"x" * 300, b"x" * 300, b"h1.example.com"]
    for authority in authorities:
        _record(log, authority=authority, route=authority.decode()[:40])
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [entry["authority"].encode() for entry in lines] == authorities
    assert [entry["route"] for entry in lines] == [a.decode()[:40] for a in authorities]
    assert {entry["method"] for entry in lines} == {"GET"}
