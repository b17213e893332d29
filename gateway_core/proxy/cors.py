"""Data path: Istio ``corsPolicy`` with the semantics of Envoy's CORS filter.

A request is a CORS request when it carries a non-empty ``Origin`` that one of the policy's
origin matchers accepts (a matcher that accepts ``*`` accepts every origin). A CORS preflight
(``OPTIONS`` with ``Access-Control-Request-Method``) is answered by the gateway with 200 and the
allow-* headers; any other CORS request is routed as usual and its response (proxied or local)
gets ``access-control-allow-origin`` (the request's origin), ``-allow-credentials`` and
``-expose-headers``. Requests from other origins pass through untouched, preflights included
(Istio's default ``unmatchedPreflights: FORWARD``).
"""

from __future__ import annotations

from gateway_core.routing.actions import CorsSpec, HeaderList
from gateway_core.routing.matchers import StringMatcher
from gateway_core.routing.request import RequestHead


def allowed_origin(spec: CorsSpec, req: RequestHead) -> bytes | None:
    """The request's origin when the policy allows it, else None."""
    origin = req.headers.get(b"origin")
    if not origin:
        return None
    for matcher in spec.allow_origins:
        if isinstance(matcher, StringMatcher) and (
            matcher.matches(b"*") or matcher.matches(origin)
        ):
            return origin
    return None


def is_preflight(req: RequestHead) -> bool:
    return req.method == b"OPTIONS" and bool(req.headers.get(b"access-control-request-method"))


def preflight_headers(spec: CorsSpec, origin: bytes) -> HeaderList:
    out: HeaderList = [(b"access-control-allow-origin", origin)]
    if spec.allow_credentials:
        out.append((b"access-control-allow-credentials", b"true"))
    if spec.allow_methods:
        out.append((b"access-control-allow-methods", spec.allow_methods))
    if spec.allow_headers:
        out.append((b"access-control-allow-headers", spec.allow_headers))
    if spec.max_age:
        out.append((b"access-control-max-age", spec.max_age))
    return out


def response_headers(spec: CorsSpec, origin: bytes) -> HeaderList:
    out: HeaderList = [(b"access-control-allow-origin", origin)]
    if spec.allow_credentials:
        out.append((b"access-control-allow-credentials", b"true"))
    if spec.expose_headers:
        out.append((b"access-control-expose-headers", spec.expose_headers))
    return out
