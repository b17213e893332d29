"""Tests for gateway_core/proxy/grpc.py: gRPC detection, grpc-timeout, trailers-only errors."""

from __future__ import annotations

import pytest

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.grpc import grpc_status_for, is_grpc, parse_timeout, trailers_only
from gateway_core.routing.request import RequestHead


def _req(ctype: bytes | None) -> RequestHead:
    headers = [(b"content-type", ctype)] if ctype is not None else []
    return RequestHead(b"POST", b"/a.B/C", b"", b"h", b"http", 80, headers)


def test_is_grpc_by_content_type() -> None:
    assert is_grpc(_req(b"application/grpc"))
    assert is_grpc(_req(b"application/grpc+proto"))
    assert not is_grpc(_req(b"application/grpc-web"))
    assert not is_grpc(_req(b"application/json"))
    assert not is_grpc(_req(None))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"1S", 1.0),
        (b"250m", 0.25),
        (b"2M", 120.0),
        (b"1H", 3600.0),
        (b"500u", 0.0005),
        (b"99999999n", 0.099999999),
        (b"123456789S", None),  # more than 8 digits
        (b"1s", None),
        (b"S", None),
        (b"", None),
        (None, None),
    ],
)
def test_parse_timeout(value: bytes | None, seconds: float | None) -> None:
    got = parse_timeout(value)
    if seconds is None:
        assert got is None
    else:
        assert got == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("status", "flag", "code"),
    [
        (404, ResponseFlag.NO_ROUTE, 12),
        (503, ResponseFlag.NO_HEALTHY_UPSTREAM, 14),
        (503, ResponseFlag.UPSTREAM_OVERFLOW, 14),
        (502, ResponseFlag.UPSTREAM_PROTOCOL_ERROR, 14),
        (504, ResponseFlag.UPSTREAM_TIMEOUT, 4),
        (400, None, 13),
        (401, None, 16),
        (403, None, 7),
        (429, None, 14),
        (500, None, 2),
    ],
)
def test_http_to_grpc_status(status: int, flag: ResponseFlag | None, code: int) -> None:
    """Envoy's HTTP→gRPC mapping; a timeout is DEADLINE_EXCEEDED."""
    assert grpc_status_for(status, flag) == code


def test_trailers_only_fields() -> None:
    fields = dict(trailers_only(404, ResponseFlag.NO_ROUTE, b"no route matched\n"))
    assert fields == {
        b"content-type": b"application/grpc",
        b"grpc-status": b"12",
        b"grpc-message": b"no%20route%20matched".replace(b"%20", b" "),
    }
    assert dict(trailers_only(200, None, b"", 9))[b"grpc-status"] == b"9"
    assert b"grpc-message" not in dict(trailers_only(503, None, b""))
    assert dict(trailers_only(503, None, b"50% \xff"))[b"grpc-message"] == b"50%25 %FF"
