"""Observability: one JSON access-log line per request, batched, valid JSON for any input."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

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
    deadline = asyncio.get_running_loop().time() + 5.0
    while len(path.read_text().splitlines()) < 3:
        assert asyncio.get_running_loop().time() < deadline, "the batch was never written"
        await asyncio.sleep(0.01)
    assert log.writer is not None and log.writer.drain(5.0)  # the thread counts after writing
    assert log.writer.written_lines == 3
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


async def test_json_lines_carry_protocol_upstream_time_trace_and_client_headers(
    tmp_path: Path,
) -> None:
    """The fields an operator correlates tiers with: protocol, the upstream's share of the
    duration, the trace id, X-Forwarded-For and the user agent."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    _record(
        log,
        protocol="HTTP/2",
        upstream_time=0.0021,
        trace_id=b"4bf92f3577b34da6a3ce929d0e0e4736",
        x_forwarded_for=b"203.0.113.9",
        user_agent=b"curl/7.88.1",
    )
    _record(log, status=404, flags="NR")
    log.close()
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["protocol"] == "HTTP/2"
    assert first["upstream_service_time_ms"] == 2.1
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (first["x_forwarded_for"], first["user_agent"]) == ("203.0.113.9", "curl/7.88.1")
    assert second["upstream_service_time_ms"] is None
    assert second["trace_id"] == ""


# Istio's default text format, as a log parser reads it (the fields in Istio's order).
_ISTIO_TEXT = re.compile(
    r"^\[(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" (?P<code>\d+) (?P<flags>\S+) '
    r'(?P<details>\S+) (?P<termination>\S+) "(?P<failure>[^"]*)" (?P<received>\d+) '
    r'(?P<sent>\d+) (?P<duration>\d+) (?P<upstream_time>\S+) "(?P<xff>[^"]*)" '
    r'"(?P<ua>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" '
    r'"(?P<upstream_host>[^"]*)" (?P<cluster>\S+) (?P<upstream_local>\S+) '
    r"(?P<downstream_local>\S+) (?P<downstream_remote>\S+) (?P<sni>\S+) (?P<route>\S+) "
    r"(?P<trace_id>\S+)$"
)


async def test_text_format_is_istios_default_with_the_trace_id_last(tmp_path: Path) -> None:
    """``--access-log-format text``: Envoy's default line as Istio prints it, parseable by the
    same expression, with values that could break the line escaped."""
    path = tmp_path / "access.log"
    log = AccessLog(str(path), "text")
    _record(
        log,
        upstream_time=0.0021,
        user_agent=b'evil" agent\n',
        x_forwarded_for=b"203.0.113.9",
        trace_id=b"4bf92f3577b34da6a3ce929d0e0e4736",
    )
    _record(log, status=404, flags="NR", upstream_host="-", cluster="-", route="-")
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    first, second = (_ISTIO_TEXT.match(line) for line in lines)
    assert first is not None, lines[0]
    assert second is not None, lines[1]
    assert first["method"] == "GET" and first["path"] == "/productpage?u=1"
    assert (first["protocol"], first["code"], first["flags"]) == ("HTTP/1.1", "200", "-")
    assert first["details"] == "via_upstream"
    assert (first["duration"], first["upstream_time"]) == ("3", "2")
    assert first["ua"] == "evil%22 agent%0A"
    assert first["xff"] == "203.0.113.9"
    assert first["request_id"] == "0f6c"
    assert first["upstream_host"] == "127.0.1.1:8443"
    assert first["cluster"] == "outbound|8443|cluster-1|tier2.lab"
    assert first["route"] == "tier1/bookinfo/http[0]"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (second["code"], second["flags"], second["details"]) == ("404", "NR", "route_not_found")
    assert (second["upstream_time"], second["trace_id"]) == ("-", "-")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json, text"):
        AccessLog("off", "xml")
