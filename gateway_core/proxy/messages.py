"""Data path: the request head sent upstream and the response head sent to the client."""

from __future__ import annotations

from http import HTTPStatus

from gateway_core.proxy.headers import response_headers, serialize_request, upstream_request_headers
from gateway_core.routing.actions import HeaderList, WeightedCluster
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry

REASONS: dict[int, bytes] = {s.value: s.phrase.encode() for s in HTTPStatus}


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
            path = rewrite.regex.sub(rewrite.regex_substitution, path)
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
) -> bytes:
    """The upstream request head. ``body_length``: the body is sent whole with this length
    (a mirror of a buffered body) instead of in the client's framing."""
    headers = upstream_request_headers(
        req.raw_headers,
        authority=authority,
        client_ip=client_ip,
        scheme=req.scheme,
        original_authority=req.authority,
        trust_forwarded=trust_forwarded,
        request_id=request_id,
    )
    if upgrade:
        headers += [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
    elif body_length is not None:
        if body_length or framing != "none":
            headers.append((b"content-length", b"%d" % body_length))
    elif framing == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
    elif framing == "length" or b"content-length" in req.headers:
        headers.append((b"content-length", req.headers.get(b"content-length", b"0")))
    if entry.request_headers is not None:
        headers = entry.request_headers.apply(headers)
    if target is not None and target.request_headers is not None:
        headers = target.request_headers.apply(headers)
    return serialize_request(req.method, upstream_target(req, entry, match), headers)


def response_head(
    status: int,
    raw: HeaderList,
    framing: str,
    *,
    head_request: bool,
    entry: RouteEntry | None,
    target: WeightedCluster | None,
    extra: HeaderList,
    chunked: bool,
    close: bool,
) -> bytes:
    """``framing`` is the upstream's; ``chunked`` says whether the client gets chunked framing."""
    headers = response_headers(raw)
    if target is not None and target.response_headers is not None:
        headers = target.response_headers.apply(headers)
    if entry is not None and entry.response_headers is not None:
        headers = entry.response_headers.apply(headers)
    headers.extend(extra)
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status) or b"Unknown")]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    if framing == "length" or (framing == "none" and head_request):
        for name, value in raw:
            if name == b"content-length":
                parts += (b"content-length: ", value, b"\r\n")
                break
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    parts.append(b"server: multicluster-gateway\r\n")
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def switching_protocols(headers: HeaderList) -> bytes:
    """The upstream's 101 as is (Upgrade and Connection included), without framing fields."""
    parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
    for name, value in headers:
        if name not in (b"content-length", b"transfer-encoding"):
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
