"""Data path: one structured (JSON) access-log line per request, written in batches.

Fields: ``ts`` (epoch seconds), ``method``, ``authority``, ``path``, ``status``, ``flags``
(Envoy response flags such as ``NR``, ``UF``, ``UT``; ``-`` when none), ``duration_ms``,
``upstream_host``, ``cluster``, ``route``, ``attempts``, ``bytes_received``, ``bytes_sent``,
``request_id``, ``client``. Lines are buffered and flushed every 50 ms (or every 256 lines) so
logging costs one write system call per batch rather than per request.
"""

from __future__ import annotations

import asyncio
import sys
import time
from json.encoder import encode_basestring_ascii
from typing import IO

from gateway_core.utils.memo import BoundedMemo

_LINE = (
    '{"ts":%.3f,"method":%s,"authority":%s,"path":%s,"status":%d,"flags":%s,'
    '"duration_ms":%.3f,"upstream_host":%s,"cluster":%s,"route":%s,"attempts":%d,'
    '"bytes_received":%d,"bytes_sent":%d,"request_id":%s,"client":%s}'
)
_str = encode_basestring_ascii


def _quote(value: str | bytes) -> str:
    """``value`` as a JSON string (bytes read as Latin-1, so every byte survives)."""
    quoted: str = _str(value.decode("latin-1") if isinstance(value, bytes) else value)
    return quoted


FLUSH_INTERVAL = 0.05
FLUSH_LINES = 256


class AccessLog:
    __slots__ = ("_buffer", "_handle", "_loop", "_quoted", "_timer", "enabled")

    def __init__(self, target: str = "-") -> None:
        """``target``: ``-`` for stdout, ``off`` to disable, or a file path (appended)."""
        self.enabled = target != "off"
        self._handle: IO[str] | None = None
        if self.enabled:
            self._handle = sys.stdout if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115
        self._buffer: list[str] = []
        self._quoted: BoundedMemo[str | bytes, str] = BoundedMemo(_quote, entries=4096, max_key=256)
        """JSON-quoted forms of the fields that repeat across requests (hosts, routes)."""
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

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
    ) -> None:
        if not self.enabled:
            return
        # One format string and C-level string escaping: a json.dumps of a dict costs several
        # times more, on every request.
        quoted = self._quoted
        line = _LINE % (
            time.time(),
            quoted[method],
            quoted[authority],
            _str(path.decode("latin-1")),
            status,
            quoted[flags],
            duration * 1000,
            quoted[upstream_host],
            quoted[cluster],
            quoted[route],
            attempts,
            bytes_received,
            bytes_sent,
            _str(request_id.decode("latin-1")),
            quoted[client],
        )
        self._buffer.append(line)
        if len(self._buffer) >= FLUSH_LINES:
            self.flush()
        elif self._timer is None:
            loop = self._loop or asyncio.get_running_loop()
            self._loop = loop
            self._timer = loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer or self._handle is None:
            return
        lines, self._buffer = self._buffer, []
        try:
            self._handle.write("\n".join(lines) + "\n")
            self._handle.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must not take the data path down

    def close(self) -> None:
        self.flush()
        if self._handle is not None and self._handle is not sys.stdout:
            self._handle.close()
