"""Tests for gateway_core/proxy/cors.py: Istio corsPolicy with Envoy CORS filter semantics."""

from __future__ import annotations

from gateway_core.proxy.cors import (
    allowed_origin,
    is_preflight,
    preflight_headers,
    response_headers,
)
from gateway_core.routing.actions import CorsSpec
from gateway_core.routing.matchers import ExactMatcher, PrefixMatcher, RegexMatcher
from gateway_core.routing.request import RequestHead

SPEC = CorsSpec(
    allow_origins=(ExactMatcher(b"https://a.example"), RegexMatcher(r"https://.*\.b\.example")),
    allow_methods=b"GET,POST",
    allow_headers=b"x-h",
    expose_headers=b"x-e",
    max_age=b"60",
    allow_credentials=True,
)


def req(method: bytes = b"GET", **headers: str) -> RequestHead:
    raw = [(b"host", b"h")] + [
        (k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()
    ]
    return RequestHead(method, b"/", b"", b"h", b"http", 80, raw)


def test_allowed_origin() -> None:
    """Exact and regex origin matchers apply to the Origin header; missing or other origins
    are not CORS requests for this policy."""
    assert allowed_origin(SPEC, req(origin="https://a.example")) == b"https://a.example"
    assert allowed_origin(SPEC, req(origin="https://x.b.example")) == b"https://x.b.example"
    assert allowed_origin(SPEC, req(origin="https://a.example.evil")) is None
    assert allowed_origin(SPEC, req()) is None


def test_star_matcher_allows_every_origin() -> None:
    """A matcher that accepts ``*`` accepts any origin, and the origin itself is echoed."""
    star = CorsSpec(allow_origins=(ExactMatcher(b"*"),))
    assert allowed_origin(star, req(origin="https://any")) == b"https://any"
    prefix = CorsSpec(allow_origins=(PrefixMatcher(b"https://"),))
    assert allowed_origin(prefix, req(origin="http://plain")) is None


def test_preflight_detection() -> None:
    """A preflight is OPTIONS with Access-Control-Request-Method."""
    assert is_preflight(req(b"OPTIONS", access_control_request_method="POST"))
    assert not is_preflight(req(b"OPTIONS"))
    assert not is_preflight(req(b"GET", access_control_request_method="POST"))


def test_headers() -> None:
    """Preflights get allow-origin/credentials/methods/headers/max-age; other responses
    allow-origin/credentials/expose-headers."""
    assert preflight_headers(SPEC, b"o") == [
        (b"access-control-allow-origin", b"o"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-allow-methods", b"GET,POST"),
        (b"access-control-allow-headers", b"x-h"),
        (b"access-control-max-age", b"60"),
    ]
    assert response_headers(SPEC, b"o") == [
        (b"access-control-allow-origin", b"o"),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"x-e"),
    ]
    assert response_headers(CorsSpec(), b"o") == [(b"access-control-allow-origin", b"o")]
