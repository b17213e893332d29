"""Tests for gateway_core/proxy/request_checks.py: strict request-head checks beyond llhttp."""

from __future__ import annotations

import httptools
import pytest

from gateway_core.proxy.request_checks import (
    BadRequest,
    check_head,
    request_target,
    valid_authority,
)


class _Callbacks:
    pass


def _parser(upgrade: bool = False, to: bytes = b"websocket") -> httptools.HttpRequestParser:
    """A parser whose should_upgrade() answers ``upgrade`` (it has parsed such a head)."""
    parser = httptools.HttpRequestParser(_Callbacks())
    head = b"GET / HTTP/1.1\r\nHost: h\r\n"
    if upgrade:
        head += b"Connection: Upgrade\r\nUpgrade: " + to + b"\r\n"
    try:
        parser.feed_data(head + b"\r\n")
    except httptools.HttpParserUpgrade:
        pass
    return parser


def check(
    headers: list[tuple[bytes, bytes]], *, method: bytes = b"POST", http11: bool = True
) -> tuple[bytes, str, bool]:
    return check_head(method, headers, http11=http11, default_authority=b"d:80", parser=_parser())


def rejected(headers: list[tuple[bytes, bytes]], **kwargs: object) -> tuple[int, bytes]:
    with pytest.raises(BadRequest) as info:
        check(headers, **kwargs)  # type: ignore[arg-type]
    return info.value.status, info.value.message


def test_framing_from_content_length_and_chunked() -> None:
    """No body, a Content-Length body (0 counts as none) and a chunked body are told apart."""
    assert check([(b"host", b"h")]) == (b"h", "none", False)
    assert check([(b"host", b"h"), (b"content-length", b"0")])[1] == "none"
    assert check([(b"host", b"h"), (b"content-length", b"12")])[1] == "length"
    assert check([(b"host", b"h"), (b"transfer-encoding", b"Chunked")])[1] == "chunked"


def test_content_length_with_transfer_encoding_is_400() -> None:
    """Content-Length together with Transfer-Encoding is rejected (RFC 9112 §6.1)."""
    headers = [(b"host", b"h"), (b"content-length", b"5"), (b"transfer-encoding", b"chunked")]
    assert rejected(headers)[0] == 400


def test_transfer_codings() -> None:
    """chunked must be final and appear once (400); other codings before it are 501."""
    assert rejected([(b"host", b"h"), (b"transfer-encoding", b"gzip")])[0] == 400
    assert rejected([(b"host", b"h"), (b"transfer-encoding", b"chunked, gzip")])[0] == 400
    two = [(b"host", b"h"), (b"transfer-encoding", b"chunked"), (b"transfer-encoding", b"cow")]
    assert rejected(two)[0] == 400
    again = [
        (b"host", b"h"),
        (b"transfer-encoding", b"chunked"),
        (b"transfer-encoding", b"chunked"),
    ]
    assert rejected(again)[0] == 400
    assert rejected([(b"host", b"h"), (b"transfer-encoding", b"gzip, chunked")])[0] == 501


def test_transfer_encoding_on_http10_is_400() -> None:
    """HTTP/1.0 with Transfer-Encoding has faulty framing (RFC 9112 §6.1)."""
    headers = [(b"host", b"h"), (b"transfer-encoding", b"chunked")]
    assert rejected(headers, http11=False)[0] == 400


def test_host_rules() -> None:
    """HTTP/1.1 needs exactly one valid Host; HTTP/1.0 falls back to the listener's."""
    assert rejected([])[0] == 400
    assert rejected([(b"host", b"a"), (b"host", b"b")])[0] == 400
    assert rejected([(b"host", b"h, evil")])[0] == 400
    assert check([], http11=False)[0] == b"d:80"


def test_connect_is_405() -> None:
    """CONNECT is never tunnelled by a reverse proxy."""
    assert rejected([(b"host", b"evil:443")], method=b"CONNECT")[0] == 405


def test_websocket_upgrade_detected() -> None:
    """Upgrade: websocket counts only when llhttp agreed the request upgrades."""
    headers = [(b"host", b"h"), (b"upgrade", b"WebSocket")]
    got = check_head(
        b"GET", headers, http11=True, default_authority=b"", parser=_parser(upgrade=True)
    )
    assert got == (b"h", "none", True)
    assert check(headers)[2] is False


def test_upgrade_on_http10_is_ignored() -> None:
    """RFC 9110 §7.8: an HTTP/1.0 request's Upgrade is not acted on, even when llhttp saw
    Connection: upgrade; the fast (joined) and the slow path agree."""
    headers = [(b"host", b"h"), (b"upgrade", b"websocket"), (b"connection", b"upgrade")]
    for joined in (None, dict(headers)):
        got = check_head(
            b"GET",
            headers,
            http11=False,
            default_authority=b"",
            parser=_parser(upgrade=True),
            joined=joined,
        )
        assert got == (b"h", "none", False)


@pytest.mark.parametrize(
    ("to", "http11"), [(b"h2c", True), (b"websocket", False), (b"websocket", True)]
)
def test_body_with_a_refused_upgrade_is_400(to: bytes, http11: bool) -> None:
    """llhttp would read the body of any request asking to upgrade as the next request; when
    the gateway does not upgrade (h2c, HTTP/1.0) such a body is refused. A WebSocket upgrade the
    gateway performs keeps its framing."""
    headers = [(b"host", b"h"), (b"upgrade", to), (b"content-length", b"5")]
    parser = _parser(upgrade=True, to=to)
    performed = to == b"websocket" and http11
    for joined in (None, dict(headers)):
        args = {"http11": http11, "default_authority": b"", "parser": parser, "joined": joined}
        if performed:
            assert check_head(b"POST", headers, **args) == (b"h", "length", True)  # type: ignore[arg-type]
        else:
            with pytest.raises(BadRequest) as info:
                check_head(b"POST", headers, **args)  # type: ignore[arg-type]
            assert info.value.status == 400


@pytest.mark.parametrize(
    ("authority", "ok"),
    [
        (b"example.com", True),
        (b"example.com:8080", True),
        (b"[::1]:443", True),
        (b"[::1]", True),
        (b"h:0", False),
        (b"h:65536", False),
        (b"h:8x", False),
        (b"h:", False),
        (b"a b", False),
        (b"a,b", False),
        (b"user@h", False),
        (b"h/x", False),
        (b"h\\x", False),
        (b"", False),
        (b'h<x>"', False),
        (b"h{x}", False),
        (b"h|x", False),
        (b"h^x", False),
        (b"h`x", False),
        (b"h%zz", False),
        (b"h%4", False),
        (b"h\x00", False),
        (b"h\x80", False),
        (b"[::1", False),
        (b"::1", False),
        (b"[g::1]", False),
        (b"[1:2:3:4:5:6:7:8:9]", False),
        (b"[::1]x", False),
        (b"h:123456", False),
        (b"10.0.0.1", True),
        (b"10.0.0.1:8080", True),
        (b"[2001:db8::1]:8443", True),
        (b"[::ffff:10.0.0.1]", True),
        (b"[v1.fe80::a+en1]", True),
        (b"h_x~y-z.example", True),
        (b"h%41", True),
        (b"a!$&'()*+;=b", True),
    ],
)
def test_valid_authority(authority: bytes, ok: bool) -> None:
    """Host values follow RFC 3986's authority: reg-name (unreserved, pct-encoded, sub-delims
    but the comma), IPv4, or an IPv6 address / IPvFuture in brackets; the port is 1-65535."""
    assert valid_authority(authority) is ok


def test_request_target_forms() -> None:
    """origin-form is normalised; OPTIONS * is kept; absolute-form's authority replaces Host;
    anything else is 400."""
    headers = [(b"host", b"h"), (b"x", b"1")]
    assert request_target(b"/a/%2e%2e/b?q=1", b"GET", headers) == (b"/b", b"q=1", None)
    assert request_target(b"*", b"OPTIONS", headers) == (b"*", b"", None)
    assert request_target(b"http://evil:81/p?x", b"GET", headers) == (b"/p", b"x", b"evil:81")
    assert headers == [(b"x", b"1"), (b"host", b"evil:81")]
    assert request_target(b"http://[::1]:8080/v6", b"GET", headers)[2] == b"[::1]:8080"
    for bad in (b"*", b"evil:443", b"http://", b"/a b"):
        with pytest.raises(BadRequest):
            request_target(bad, b"GET", [(b"host", b"h")])
