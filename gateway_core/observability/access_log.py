"""Data path: one access-log line per request, in JSON or in Istio's default text format.

JSON fields: ``ts`` (epoch seconds), ``method``, ``authority``, ``path``, ``protocol``,
``status``, ``flags`` (Envoy response flags such as ``NR``, ``UF``, ``UT``; ``-`` when none),
``duration_ms``, ``upstream_service_time_ms`` (from the request's start to the upstream's
response head; ``null`` when no upstream answered: at Tier-1 this is the Tier-2 hop, Tier-2
included), ``upstream_host``, ``cluster``, ``route``, ``attempts``, ``bytes_received``,
``bytes_sent``, ``request_id``, ``trace_id``, ``client``, ``x_forwarded_for``, ``user_agent``.

``text`` is Envoy's default format as Istio prints it (``[%START_TIME%] "%REQ(:METHOD)%
%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ...
%ROUTE_NAME%``), so existing parsers work, with ``%TRACE_ID%`` appended as the last field.

Lines are collected on the loop and handed to a writer thread (``log_writer.LogWriter``) every
50 ms or every 256 lines: one batch, never a blocking write on the event loop; what the writer
cannot keep up with is dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from json.encoder import encode_basestring_ascii
from typing import BinaryIO

from gateway_core.observability.log_writer import LogWriter
from gateway_core.utils.memo import BoundedMemo

FORMATS = ("json", "text")

_JSON = (
    '{"ts":%.3f,"method":%s,"authority":%s,"path":%s,"protocol":%s,"status":%d,"flags":%s,'
    '"duration_ms":%.3f,"upstream_service_time_ms":%s,"upstream_host":%s,"cluster":%s,'
    '"route":%s,"attempts":%d,"bytes_received":%d,"bytes_sent":%d,"request_id":%s,'
    '"trace_id":%s,"client":%s,"x_forwarded_for":%s,"user_agent":%s}'
)
_TEXT = '[%s] "%s %s %s" %d %s %s - "-" %d %d %d %s "%s" "%s" "%s" "%s" "%s" %s - %s %s %s %s %s'
"""Istio's default text format; fields the gateway does not have print ``-``, as Envoy does."""

_DETAILS = {
    "NR": "route_not_found",
    "NC": "cluster_not_found",
    "UH": "no_healthy_upstream",
    "UO": "upstream_overflow",
    "UF": "upstream_reset_before_response_started{connection_failure}",
    "UT": "response_timeout",
    "URX": "upstream_max_retries_exceeded",
    "UC": "upstream_reset_after_response_started{connection_termination}",
    "DC": "downstream_remote_disconnect",
    "SI": "stream_idle_timeout",
    "FI": "fault_filter_abort",
    "DI": "fault_filter_delay",
    "RL": "local_rate_limited",
    "LD": "loop_detected",
}
"""%RESPONSE_CODE_DETAILS% for the flags that have one in Envoy; ``via_upstream`` otherwise."""

_str = encode_basestring_ascii
_log = logging.getLogger("gateway.access_log")
WARN_EVERY = 10.0


def _quote(value: str | bytes) -> str:
    """``value`` as a JSON string (bytes read as Latin-1, so every byte survives)."""
    quoted: str = _str(value.decode("latin-1") if isinstance(value, bytes) else value)
    return quoted


def _text(value: bytes) -> str:
    """A request value for the text format: Latin-1, ``-`` when absent, no quote or newline
    that could split the line."""
    if not value:
        return "-"
    text = value.decode("latin-1")
    if '"' in text or "\n" in text or "\r" in text:
        text = text.replace('"', "%22").replace("\n", "%0A").replace("\r", "%0D")
    return text


def _open(target: str) -> BinaryIO:
    if target == "-":
        stream: BinaryIO = sys.stdout.buffer
        return stream
    return open(target, "ab")  # closed by ``AccessLog.close``


FLUSH_INTERVAL = 0.05
FLUSH_LINES = 256


class AccessLog:
    __slots__ = (
        "_buffer",
        "_owned",
        "_quoted",
        "_reported",
        "_text",
        "_timer",
        "_warned_at",
        "enabled",
        "writer",
    )

    def __init__(
        self, target: str = "-", fmt: str = "json", *, writer: LogWriter | None = None
    ) -> None:
        """``target``: ``-`` for stdout, ``off`` to disable, or a file path (appended);
        ``fmt``: ``json`` or ``text``. Opening the file is the control path's work."""
        if fmt not in FORMATS:
            raise ValueError(f"access log format must be one of {', '.join(FORMATS)}: {fmt!r}")
        self.enabled = target != "off"
        self._text = fmt == "text"
        self._owned: BinaryIO | None = None
        if writer is None and self.enabled:
            stream = _open(target)
            if target != "-":
                self._owned = stream
            writer = LogWriter(stream)
        self.writer = writer
        self._buffer: list[str] = []
        self._quoted: BoundedMemo[str | bytes, str] = BoundedMemo(_quote, entries=4096, max_key=256)
        """JSON-quoted forms of the fields that repeat across requests (hosts, routes)."""
        self._timer: asyncio.TimerHandle | None = None
        self._reported = 0
        self._warned_at = 0.0

    @property
    def dropped_lines(self) -> int:
        return self.writer.dropped_lines if self.writer is not None else 0

    @property
    def write_errors(self) -> int:
        return self.writer.write_errors if self.writer is not None else 0

    def record(
        self,
        *,
        method: bytes,
        authority: bytes,
        path: bytes,
        status: int,
        flags: str,
        duration: float,
        upstream_host: str,
        cluster: str,
        route: str,
        attempts: int,
        bytes_received: int,
        bytes_sent: int,
        request_id: bytes,
        client: str,
        protocol: str = "HTTP/1.1",
        upstream_time: float | None = None,
        trace_id: bytes = b"",
        x_forwarded_for: bytes = b"",
        user_agent: bytes = b"",
        local_address: str = "-",
        server_name: str = "-",
    ) -> None:
        if not self.enabled:
            return
        now = time.time()
        if self._text:
            line = _TEXT % (
                _start_time(now - duration),
                method.decode("latin-1"),
                _text(path),
                protocol,
                status,
                flags,
                _DETAILS.get(flags, "via_upstream") if flags != "-" else "via_upstream",
                bytes_received,
                bytes_sent,
                round(duration * 1000),
                "-" if upstream_time is None else str(round(upstream_time * 1000)),
                _text(x_forwarded_for),
                _text(user_agent),
                _text(request_id),
                _text(authority),
                upstream_host,
                cluster,
                local_address,
                client,
                server_name,
                route,
                trace_id.decode("latin-1") or "-",
            )
        else:
            # One format string and C-level string escaping: a json.dumps of a dict costs
            # several times more, on every request.
            quoted = self._quoted
            line = _JSON % (
                now,
                quoted[method],
                quoted[authority],
                _str(path.decode("latin-1")),
                quoted[protocol],
                status,
                quoted[flags],
                duration * 1000,
                "null" if upstream_time is None else "%.3f" % (upstream_time * 1000),
                quoted[upstream_host],
                quoted[cluster],
                quoted[route],
                attempts,
                bytes_received,
                bytes_sent,
                _str(request_id.decode("latin-1")),
                _str(trace_id.decode("latin-1")),
                quoted[client],
                _str(x_forwarded_for.decode("latin-1")),
                _str(user_agent.decode("latin-1")),
            )
        self._buffer.append(line)
        if len(self._buffer) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Hand the collected lines to the writer thread (never blocks)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer or self.writer is None:
            return
        lines, self._buffer = self._buffer, []
        data = ("\n".join(lines) + "\n").encode("latin-1", "replace")
        self.writer.submit(data, len(lines))
        self._warn_on_loss()

    def sync(self, timeout: float = 5.0) -> bool:
        """Flush, then wait until the writer wrote it (tools and tests, off the loop's hot
        path); False on timeout."""
        self.flush()
        return self.writer is None or self.writer.drain(timeout)

    def _warn_on_loss(self) -> None:
        """Say so in the process log, at most every ``WARN_EVERY`` seconds, when lines were
        dropped (they are counted in ``gateway_access_log_dropped_lines_total`` as well)."""
        writer = self.writer
        assert writer is not None
        lost = writer.dropped_lines
        if lost == self._reported:
            return
        now = time.monotonic()
        if now - self._warned_at < WARN_EVERY:
            return
        self._warned_at = now
        _log.warning(
            "access log: %d line(s) dropped (%d in total): the log's reader is behind%s",
            lost - self._reported,
            lost,
            f"; last write error: {writer.last_error}" if writer.last_error else "",
        )
        self._reported = lost

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()
        if self._owned is not None:
            self._owned.close()


def _start_time(epoch: float) -> str:
    """Envoy's %START_TIME%: ``2024-06-02T13:24:57.930Z``."""
    whole = int(epoch)
    millis = int((epoch - whole) * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(whole))}.{millis:03d}Z"
