"""Tests for gateway_core/proxy/local_reply.py: responses the gateway writes itself."""

from __future__ import annotations

import pytest

from gateway_core.proxy.flags import ResponseFlag
from gateway_core.proxy.http1_wire import render
from gateway_core.proxy.local_reply import redirect_location, route_answer
from gateway_core.routing.actions import DirectResponseAction, RedirectAction
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead


def req(
    authority: bytes = b"h", path: bytes = b"/a", query: bytes = b"", scheme: bytes = b"http"
) -> RequestHead:
    return RequestHead(b"GET", path, query, authority, scheme, 8000, [(b"host", authority)])


def test_render_local_response() -> None:
    """Bodies get a type and length; empty answers only a length (none for 204/304); HEAD
    keeps the length without the body; close is stated when asked."""
    assert render(404, b"nope\n") == (
        b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
        b"server: multicluster-gateway\r\n\r\nnope\n"
    )
    empty = render(301, b"", extra=[(b"location", b"/x")], close=True)
    assert empty == (
        b"HTTP/1.1 301 Moved Permanently\r\ncontent-length: 0\r\nlocation: /x\r\n"
        b"server: multicluster-gateway\r\nconnection: close\r\n\r\n"
    )
    assert b"content-length" not in render(204, b"")
    head = render(418, b"teapot", head_only=True)
    assert head.endswith(b"\r\n\r\n") and b"content-length: 6\r\n" in head


@pytest.mark.parametrize(
    ("action", "authority", "path", "query", "location"),
    [
        (RedirectAction(path=b"/new"), b"h", b"/a", b"q=1", b"http://h/new?q=1"),
        (RedirectAction(path=b"/new?b=2"), b"h", b"/a", b"q=1", b"http://h/new?b=2"),
        (RedirectAction(path=b"/new"), b"h:8080", b"/a", b"", b"http://h:8080/new"),
        (RedirectAction(authority=b"x.example"), b"h:8080", b"/a", b"", b"http://x.example/a"),
        (RedirectAction(port=8443), b"h", b"/a", b"", b"http://h:8443/a"),
        (RedirectAction(port=80), b"h:9", b"/a", b"", b"http://h/a"),
        (RedirectAction(scheme=b"https"), b"h:8080", b"/a", b"", b"https://h/a"),
        (
            RedirectAction(scheme=b"https", derive_port="FROM_REQUEST_PORT"),
            b"h",
            b"/a",
            b"",
            b"https://h:8000/a",
        ),
        (RedirectAction(derive_port="FROM_PROTOCOL_DEFAULT"), b"h:8080", b"/a", b"", b"http://h/a"),
        (
            RedirectAction(https_redirect=True, https_port=8443),
            b"h:80",
            b"/a",
            b"x",
            b"https://h:8443/a?x",
        ),
        (RedirectAction(https_redirect=True, https_port=8443), b"h", b"/a", b"", b"https://h/a"),
        (
            RedirectAction(https_redirect=True, https_port=443),
            b"h:8000",
            b"/a",
            b"",
            b"https://h/a",
        ),
    ],
)
def test_redirect_location(
    action: RedirectAction, authority: bytes, path: bytes, query: bytes, location: bytes
) -> None:
    """Location follows Envoy: path replaced (query kept unless given), authority, explicit or
    derived port (default ports omitted), scheme, and httpsRedirect to the HTTPS port."""
    assert redirect_location(action, req(authority, path, query), None) == location


def test_redirect_prefix_rewrite_uses_matched_prefix() -> None:
    """A prefix redirect replaces only the matched prefix."""
    match = RequestMatch(uri=PrefixMatcher(b"/old"))
    action = RedirectAction(prefix_rewrite=b"/new")
    assert redirect_location(action, req(path=b"/old/x"), match) == b"http://h/new/x"


def test_route_answer() -> None:
    """Direct responses answer their status and body; redirects their code and Location; an
    httpsRedirect behind a trusted TLS hop is no route (it would loop)."""
    assert route_answer(DirectResponseAction(418, b"t"), req(), None, False) == (
        418,
        None,
        b"t",
        [],
    )
    status, flag, body, extra = route_answer(
        RedirectAction(code=302, path=b"/n"), req(), None, False
    )
    assert (status, flag, body, extra) == (302, None, b"", [(b"location", b"http://h/n")])
    looping = route_answer(RedirectAction(https_redirect=True), req(), None, True)
    assert looping[:2] == (404, ResponseFlag.NO_ROUTE)
