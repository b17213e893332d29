"""Tests for gateway_core/proxy/messages.py: upstream request heads and client response heads."""

from __future__ import annotations

from gateway_core.config.regex import compile_regex, compile_rewrite
from gateway_core.proxy.messages import (
    request_head,
    response_headers,
    shadow_authority,
    upstream_authority,
    upstream_target,
)
from gateway_core.routing.actions import HeaderOps, RewriteSpec, RouteAction, WeightedCluster
from gateway_core.routing.matchers import ExactMatcher, PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.routing.route_table import RouteEntry


def entry(**kwargs: object) -> RouteEntry:
    target = WeightedCluster("c", 100, "svc")
    return RouteEntry("ns/vs/http[0]", "ns/vs", 0, (), RouteAction.build((target,)), **kwargs)  # type: ignore[arg-type]


def req(
    path: bytes = b"/p", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> RequestHead:
    raw = [(b"host", b"a.example")] + (headers or [])
    return RequestHead(b"POST", path, query, b"a.example", b"http", 80, raw, "10.0.0.1")


def head(request: RequestHead, route: RouteEntry, **kwargs: object) -> bytes:
    defaults: dict[str, object] = {
        "authority": b"up",
        "client_ip": b"10.0.0.1",
        "trust_forwarded": False,
        "request_id": b"rid",
        "framing": "none",
        "upgrade": False,
    }
    defaults.update(kwargs)
    return request_head(request, route, None, None, **defaults)  # type: ignore[arg-type]


def test_rewrite_prefix_exact_and_regex() -> None:
    """A prefix match's prefix is replaced; other matches replace the whole path; a regex
    rewrite substitutes capture groups; the query always follows."""
    prefix = RequestMatch(uri=PrefixMatcher(b"/api/v1"))
    exact = RequestMatch(uri=ExactMatcher(b"/old"))
    rewrite = entry(rewrite=RewriteSpec(uri=b"/v2"))
    assert upstream_target(req(b"/api/v1/users", b"x=1"), rewrite, prefix) == b"/v2/users?x=1"
    assert upstream_target(req(b"/old"), rewrite, exact) == b"/v2"
    rx = compile_rewrite(compile_regex(r"^/rx/([^/]+)/(.*)$"), r"/\2/\1")
    regex = RewriteSpec(regex=rx)
    assert upstream_target(req(b"/rx/a/b/c"), entry(rewrite=regex), None) == b"/b/c/a"
    assert upstream_target(req(b"/same", b"q"), entry(), None) == b"/same?q"


def test_upstream_authority_rewrite() -> None:
    """rewrite.authority replaces the client's authority upstream."""
    assert upstream_authority(req(), entry()) == b"a.example"
    assert upstream_authority(req(), entry(rewrite=RewriteSpec(authority=b"b"))) == b"b"


def test_request_head_framing() -> None:
    """chunked bodies stay chunked, lengths are kept, a mirror states its buffered length,
    an upgrade asks for websocket."""
    chunked = head(req(), entry(), framing="chunked")
    assert b"transfer-encoding: chunked\r\n" in chunked and b"content-length" not in chunked
    sized = head(req(headers=[(b"content-length", b"5")]), entry(), framing="length")
    assert b"content-length: 5\r\n" in sized
    mirrored = head(req(), entry(), framing="chunked", body_length=7)
    assert b"content-length: 7\r\n" in mirrored and b"transfer-encoding" not in mirrored
    assert b"content-length" not in head(req(), entry(), body_length=0)
    upgrade = head(req(), entry(), upgrade=True)
    assert b"connection: upgrade\r\nupgrade: websocket\r\n" in upgrade
    assert head(req(), entry()).startswith(b"POST /p HTTP/1.1\r\nhost: up\r\n")


def test_request_head_applies_rule_then_destination_header_ops() -> None:
    """Rule-level then destination-level request header operations."""
    rule = entry(request_headers=HeaderOps(set=((b"x-a", b"rule"),), add=((b"x-b", b"rule"),)))
    target = WeightedCluster("c", 100, "svc", request_headers=HeaderOps(set=((b"x-a", b"dest"),)))
    out = request_head(
        req(headers=[(b"x-b", b"client")]),
        rule,
        target,
        None,
        authority=b"up",
        client_ip=b"ip",
        trust_forwarded=False,
        request_id=b"r",
        framing="none",
        upgrade=False,
    )
    assert b"x-a: dest\r\n" in out and b"x-a: rule" not in out
    assert b"x-b: client\r\n" in out and b"x-b: rule\r\n" in out


def test_response_headers_are_protocol_neutral() -> None:
    """Hop-by-hop fields, Content-Length and the upstream's server are removed (the codec
    frames the body); the length is returned apart; extra fields come last."""
    raw = [(b"content-length", b"10"), (b"server", b"pod"), (b"x", b"1"), (b"connection", b"x2")]
    headers, length = response_headers(raw, entry=None, target=None, extra=[(b"e", b"2")])
    assert headers == [(b"x", b"1"), (b"e", b"2")]
    assert length == b"10"
    assert response_headers([], entry=None, target=None, extra=[]) == ([], None)


def test_shadow_authority_inserts_suffix_before_port() -> None:
    """Mirrors get Host ``<host>-shadow`` with the port kept after it."""
    assert shadow_authority(b"a.example") == b"a.example-shadow"
    assert shadow_authority(b"a.example:8080") == b"a.example-shadow:8080"
    assert shadow_authority(b"[::1]:80") == b"[::1]-shadow:80"
