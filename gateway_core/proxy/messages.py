"""Data path: the request head sent upstream and the response fields sent to the client."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway_core.proxy.headers import (
    fields_text,
    forwarded_fields,
    response_fields,
    serialize_request,
    upstream_request_headers,
)
from gateway_core.proxy.trace_context import TraceContext
from gateway_core.routing.actions import HeaderList, WeightedCluster
from gateway_core.routing.loop_guard import HOPS_HEADER
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry

if TYPE_CHECKING:
    from gateway_core.proxy.interfaces import ExchangeView


def upstream_authority(req: RequestHead, entry: RouteEntry) -> bytes:
    rewrite = entry.rewrite
    if rewrite is not None and rewrite.authority is not None:
        return rewrite.authority
    return req.authority


def upstream_target(req: RequestHead, entry: RouteEntry, match: RequestMatch | None) -> bytes:
    """Path after ``rewrite`` (prefix of a prefix match, whole path otherwise, or regex) + query."""
    rewrite = entry.rewrite
    path = req.path
    if rewrite is not None:
        if rewrite.regex is not None:
            path = rewrite.regex.apply(path)
        elif rewrite.uri is not None:
            if match is not None and isinstance(match.uri, PrefixMatcher):
                path = rewrite.uri + path[len(match.uri.value) :]
            else:
                path = rewrite.uri
    return path + b"?" + req.query if req.query else path


def shadow_authority(authority: bytes) -> bytes:
    """``host[:port]`` → ``host-shadow[:port]`` (Envoy's mirror Host)."""
    if authority.startswith(b"["):
        end = authority.find(b"]") + 1
        return authority[:end] + b"-shadow" + authority[end:]
    host, sep, port = authority.rpartition(b":")
    if sep and port.isdigit():
        return host + b"-shadow:" + port
    return authority + b"-shadow"


def request_head(
    req: RequestHead,
    entry: RouteEntry,
    target: WeightedCluster | None,
    match: RequestMatch | None,
    *,
    authority: bytes,
    client_ip: bytes,
    trust_forwarded: bool,
    request_id: bytes,
    framing: str,
    upgrade: bool,
    body_length: int | None = None,
    hops: bytes = b"",
    trace: TraceContext | None = None,
) -> bytes:
    """The upstream request head. ``body_length``: the body is sent whole with this length
    (a mirror of a buffered body) instead of in the client's framing. ``hops``: the
    ``x-gateway-hops`` value (the loop guard's). ``trace``: the gateway's span, whose fields
    replace the request's trace fields."""
    if entry.request_headers is not None or (
        target is not None and target.request_headers is not None
    ):
        return _request_head_with_ops(
            req, entry, target, match, authority, client_ip, trust_forwarded, request_id,
            framing, upgrade, body_length, hops, trace,
        )  # fmt: skip
    # No header operations: serialise the fields straight away, in the order
    # ``upstream_request_headers`` lists them.
    kept, xff, xfp, xfh = forwarded_fields(
        req.raw_headers,
        client_ip=client_ip,
        scheme=req.scheme,
        original_authority=req.authority,
        trust_forwarded=trust_forwarded,
    )
    if trace is not None:
        kept = trace.upstream(kept)
    if entry.rewrite is None:
        path = req.path + b"?" + req.query if req.query else req.path
    else:
        path = upstream_target(req, entry, match)
    parts = [req.method, b" ", path, b" HTTP/1.1\r\nhost: ", authority, b"\r\n"]
    if kept:
        parts += (fields_text(kept), b"\r\n")
    parts += (
        b"x-forwarded-for: ", xff,
        b"\r\nx-forwarded-proto: ", xfp,
        b"\r\nx-forwarded-host: ", xfh,
        b"\r\nx-request-id: ", request_id, b"\r\n",
    )  # fmt: skip
    if hops:
        parts += (HOPS_HEADER, b": ", hops, b"\r\n")
    if framing != "none" or upgrade or body_length is not None or b"content-length" in req.headers:
        for name, value in _framing_fields(req, framing, upgrade, body_length):
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


_UPGRADE_FIELDS: HeaderList = [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
_CHUNKED_FIELDS: HeaderList = [(b"transfer-encoding", b"chunked")]
_NO_FIELDS: HeaderList = []


def _framing_fields(
    req: RequestHead, framing: str, upgrade: bool, body_length: int | None
) -> HeaderList:
    """The fields that announce the upstream request's body (or the upgrade). Callers only
    read the list returned."""
    if upgrade:
        return _UPGRADE_FIELDS
    if body_length is not None:
        if body_length or framing != "none":
            return [(b"content-length", b"%d" % body_length)]
        return _NO_FIELDS
    if framing == "chunked":
        return _CHUNKED_FIELDS
    if framing == "length" or b"content-length" in req.headers:
        return [(b"content-length", req.headers.get(b"content-length", b"0"))]
    return _NO_FIELDS


def _request_head_with_ops(
    req: RequestHead,
    entry: RouteEntry,
    target: WeightedCluster | None,
    match: RequestMatch | None,
    authority: bytes,
    client_ip: bytes,
    trust_forwarded: bool,
    request_id: bytes,
    framing: str,
    upgrade: bool,
    body_length: int | None,
    hops: bytes,
    trace: TraceContext | None,
) -> bytes:
    """``request_head`` when header operations apply: they see (and may replace) every field,
    the gateway's own and the framing fields included; the trace fields go in last (Envoy
    injects them after the route's header operations)."""
    headers = upstream_request_headers(
        req.raw_headers,
        authority=authority,
        client_ip=client_ip,
        scheme=req.scheme,
        original_authority=req.authority,
        trust_forwarded=trust_forwarded,
        request_id=request_id,
    )
    if hops:
        headers.append((HOPS_HEADER, hops))
    headers += _framing_fields(req, framing, upgrade, body_length)
    if entry.request_headers is not None:
        headers = entry.request_headers.apply(headers)
    if target is not None and target.request_headers is not None:
        headers = target.request_headers.apply(headers)
    if trace is not None:
        headers = trace.upstream(headers)
    return serialize_request(req.method, upstream_target(req, entry, match), headers)


def response_headers(
    raw: HeaderList,
    *,
    entry: RouteEntry | None,
    target: WeightedCluster | None,
    extra: HeaderList,
) -> tuple[HeaderList, bytes | None]:
    """The response's fields for the client, protocol-neutral: hop-by-hop and framing fields
    removed, the destination's then the route's header operations applied, ``extra`` (cookies,
    CORS) appended; and the upstream's Content-Length, if any. Each codec adds its framing."""
    headers, length = response_fields(raw)
    if target is not None and target.response_headers is not None:
        headers = target.response_headers.apply(headers)
    if entry is not None and entry.response_headers is not None:
        headers = entry.response_headers.apply(headers)
    if extra:
        headers = headers + extra
    return headers, length


_TE_TRAILERS: HeaderList = [(b"te", b"trailers")]


def request_fields(ex: ExchangeView) -> tuple[bytes, bytes, bytes, HeaderList]:
    """The upstream request as HTTP/2 wants it: ``(method, path, authority, fields)``, the
    route's and destination's header operations applied, no connection-specific fields
    (RFC 9113 §8.2.2) and no Host (``:authority`` carries it, §8.3.1). ``te: trailers`` is
    kept when the client sent it: gRPC servers require it."""
    req, entry = ex.req, ex.entry
    assert entry is not None
    down = ex.down
    headers = upstream_request_headers(
        req.raw_headers,
        authority=ex.authority,
        client_ip=down.client_ip_bytes,
        scheme=req.scheme,
        original_authority=req.authority,
        trust_forwarded=down.trust_forwarded,
        request_id=ex.request_id,
    )
    hops = ex.hops
    if hops:
        headers.append((HOPS_HEADER, hops))
    length = req.headers.get(b"content-length")
    if length is not None:
        headers.append((b"content-length", length))
    te = req.headers.get(b"te")
    if te is not None and b"trailers" in te.lower():
        headers += _TE_TRAILERS
    target = ex.target
    if entry.request_headers is not None:
        headers = entry.request_headers.apply(headers)
    if target is not None and target.request_headers is not None:
        headers = target.request_headers.apply(headers)
    if ex.trace is not None:
        headers = ex.trace.upstream(headers)
    authority = ex.authority
    fields: HeaderList = []
    for field in headers:
        if field[0] == b"host":
            authority = field[1]  # a header operation may have set it
        elif field[0] not in _H2_DROP:
            fields.append(field)
    return req.method, upstream_target(req, entry, ex.match), authority, fields


_H2_DROP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
