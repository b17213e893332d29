"""Data path: the one place an unexpected exception in the gateway's own code is told apart
from a peer's fault, logged and counted.

httptools wraps any exception a parser callback raises as ``HttpParserCallbackError``, a
subclass of ``HttpParserError``, so a peer's malformed bytes and a bug in the gateway reach the
codec as the same exception type. ``gateway_fault`` separates them. A bug is reported here
(``logging`` with its traceback, ``gateway_internal_errors_total``); the codec then answers 500,
or resets the connection when the response already started. It is never counted against the
client (no 4xx, no protocol-error metric) nor against an upstream host (no retry, no outlier
record, no ejection).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httptools

if TYPE_CHECKING:
    from gateway_core.observability.metrics import GatewayMetrics

_log = logging.getLogger("gateway.internal")


def gateway_fault(
    exc: httptools.HttpParserError, expected: tuple[type[Exception], ...]
) -> Exception | None:
    """The gateway's own exception behind a parser error; None when ``exc`` is about the bytes
    (llhttp's own verdict, or one of the ``expected`` exceptions a callback raises on purpose).
    A ``BaseException`` that is no ``Exception`` (a cancellation, an exit) is re-raised."""
    if not isinstance(exc, httptools.HttpParserCallbackError):
        return None
    cause = exc.__context__
    if cause is None or isinstance(cause, expected):
        return None
    if not isinstance(cause, Exception):
        raise cause
    return cause


def report_internal_error(metrics: GatewayMetrics, exc: BaseException, where: str) -> None:
    """Log ``exc`` with its traceback and count it; ``where`` names the path it interrupted."""
    metrics.internal_errors += 1
    _log.error("internal error in the %s: %r", where, exc, exc_info=exc)
