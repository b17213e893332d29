"""Data path: gRPC over the router: request detection, ``grpc-timeout``, and local replies
as trailers-only gRPC errors.

A gRPC client cannot read an HTTP error page: Envoy answers its local replies to gRPC requests
with HTTP 200 and the error in ``grpc-status``/``grpc-message`` (a trailers-only response),
mapping the HTTP status as gRPC's HTTP-to-gRPC table does (Envoy ``Grpc::Utility::
httpToGrpcStatus``). A timeout of the route or of ``grpc-timeout`` is ``DEADLINE_EXCEEDED``.
"""

from __future__ import annotations

from urllib.parse import quote_from_bytes

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.routing.actions import HeaderList
from gateway_core.routing.request import RequestHead

OK = 0
CANCELLED = 1
UNKNOWN = 2
DEADLINE_EXCEEDED = 4
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
UNAUTHENTICATED = 16

_HTTP_TO_GRPC = {
    400: INTERNAL,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: UNIMPLEMENTED,
    429: UNAVAILABLE,
    502: UNAVAILABLE,
    503: UNAVAILABLE,
    504: UNAVAILABLE,
}

_UNITS = {b"H": 3600.0, b"M": 60.0, b"S": 1.0, b"m": 1e-3, b"u": 1e-6, b"n": 1e-9}


def is_grpc(req: RequestHead) -> bool:
    """``content-type: application/grpc`` or ``application/grpc+proto`` and the like (not
    grpc-web, whose clients read HTTP statuses)."""
    ctype = req.headers.get(b"content-type")
    return ctype is not None and (
        ctype == b"application/grpc" or ctype.startswith(b"application/grpc+")
    )


def grpc_status_for(status: int, flag: ResponseFlag | None) -> int:
    if flag is ResponseFlag.UPSTREAM_TIMEOUT:
        return DEADLINE_EXCEEDED
    return _HTTP_TO_GRPC.get(status, UNKNOWN)


def trailers_only(
    status: int, flag: ResponseFlag | None, message: bytes, code: int | None = None
) -> HeaderList:
    """The fields of a trailers-only gRPC error answering a local reply of ``status`` (or
    carrying ``code`` when the reply names its gRPC status, as a fault abort does)."""
    if code is None:
        code = grpc_status_for(status, flag)
    fields: HeaderList = [
        (b"content-type", b"application/grpc"),
        (b"grpc-status", b"%d" % code),
    ]
    text = message.strip()
    if text:
        # grpc-message is percent-encoded (gRPC over HTTP/2, "Responses").
        fields.append((b"grpc-message", quote_from_bytes(text, safe=" ").encode()))
    return fields


def status_field(fields: HeaderList) -> bytes | None:
    """The ``grpc-status`` value among response header or trailer fields, if any."""
    for name, value in fields:
        if name == b"grpc-status":
            return value
    return None


def parse_timeout(value: bytes | None) -> float | None:
    """``grpc-timeout``: at most 8 digits and a unit (H, M, S, m, u, n); None when absent or
    malformed (a malformed value is ignored, as Envoy does)."""
    if not value or len(value) > 9:
        return None
    digits, unit = value[:-1], value[-1:]
    if not digits.isdigit() or unit not in _UNITS:
        return None
    return int(digits) * _UNITS[unit]
