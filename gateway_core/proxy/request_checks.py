"""Data path: the checks of a request head that a strict proxy makes beyond llhttp's own.

Exactly one Host whose value follows RFC 3986's authority grammar
(reg-name, IP-literal or IPv4 address, and an optional port 1-65535; RFC 9112 §3.2 requires
400 otherwise, as Envoy answers); no CONNECT; Transfer-Encoding only on HTTP/1.1, only
``chunked`` (final, once) and never together with Content-Length (RFC 9112 §6.1: 400, then
close); the request target in origin-form (normalised by ``normalize.py``), ``OPTIONS *``, or
absolute-form, whose authority then replaces Host (RFC 9112 §3.2.2).

Upgrade: only an HTTP/1.1 ``Upgrade: websocket`` is acted on; an HTTP/1.0 request's Upgrade is
ignored (RFC 9110 §7.8), as is ``h2c``. llhttp stops at the head of every request that asks to
upgrade and would read its body as the next request, so a request asking for an upgrade the
gateway does not perform is refused (400) when it carries a body.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import httptools

from gateway_core.proxy.normalize import BadTarget, split_target
from gateway_core.utils.memo import BoundedMemo

HeaderList = list[tuple[bytes, bytes]]

_REG_NAME = rb"(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+"
"""RFC 3986 reg-name (unreserved, pct-encoded, sub-delims), without the comma: in a field
value it separates list members (``Host: h, evil`` is two hosts)."""
_IP_FUTURE = rb"v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+"
_AUTHORITY = re.compile(
    rb"(?:" + _REG_NAME + rb"|\[([0-9A-Fa-f:.]+|" + _IP_FUTURE + rb")\])(?::([0-9]{1,5}))?"
)


class BadRequest(Exception):
    """The request cannot be served: answer ``status`` with ``message`` and close."""

    def __init__(self, status: int, message: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.message = message


def check_head(
    method: bytes,
    headers: HeaderList,
    *,
    http11: bool,
    default_authority: bytes,
    parser: httptools.HttpRequestParser,
    joined: dict[bytes, bytes] | None = None,
) -> tuple[bytes, str, bool]:
    """``(authority, body framing, websocket upgrade)``; framing is none, length or chunked.

    ``joined``: ``headers`` by name (``join_headers``); when no name repeats, the fields are
    looked up there instead of scanning the list."""
    if joined is not None and len(joined) == len(headers):
        host = joined.get(b"host")
        coding = joined.get(b"transfer-encoding")
        length = joined.get(b"content-length")
        upgrade_to = joined.get(b"upgrade")
        upgrade = (
            http11
            and upgrade_to is not None
            and _is_websocket(upgrade_to)
            and parser.should_upgrade()
        )
        if host is not None and _VALID.get(host) and method != b"CONNECT":
            authority = host  # a Host value seen before: the checks of ``_authority`` hold
        else:
            authority = _authority(method, host, False, http11, default_authority)
        if coding is None and length is None:
            return authority, "none", upgrade
        framing = _framing(coding, length, http11)
        return authority, _unless_refused_upgrade(framing, upgrade, parser), upgrade
    hosts = [v for n, v in headers if n == b"host"]
    authority = _authority(
        method, hosts[0] if hosts else None, len(hosts) > 1, http11, default_authority
    )
    coding = length = None
    upgrade = False
    for name, value in headers:
        if name == b"transfer-encoding":
            coding = value if coding is None else coding + b"," + value
        elif name == b"content-length":
            length = value
        elif name == b"upgrade" and _is_websocket(value):
            upgrade = http11 and parser.should_upgrade()
    framing = _framing(coding, length, http11)
    return authority, _unless_refused_upgrade(framing, upgrade, parser), upgrade


def _unless_refused_upgrade(
    framing: str, upgrade: bool, parser: httptools.HttpRequestParser
) -> str:
    if framing != "none" and not upgrade and parser.should_upgrade():
        raise BadRequest(400, b"a request body with an Upgrade the gateway does not perform\n")
    return framing


def _authority(
    method: bytes, host: bytes | None, repeated: bool, http11: bool, default: bytes
) -> bytes:
    if repeated:
        raise BadRequest(400, b"multiple Host headers\n")
    if host is None and http11:
        raise BadRequest(400, b"missing Host header\n")
    authority = default if host is None else host
    if not _VALID[authority]:
        raise BadRequest(400, b"invalid Host header\n")
    if method == b"CONNECT":
        raise BadRequest(405, b"CONNECT is not supported\n")
    return authority


def _is_websocket(value: bytes) -> bool:
    return value.strip().lower() == b"websocket"


def _framing(coding: bytes | None, length: bytes | None, http11: bool) -> str:
    if coding is None:
        return "length" if length and length.strip() != b"0" else "none"
    if not http11:
        raise BadRequest(400, b"Transfer-Encoding in an HTTP/1.0 request\n")
    if length is not None:
        raise BadRequest(400, b"both Content-Length and Transfer-Encoding\n")
    codings = [c.strip().lower() for c in coding.split(b",")]
    if codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
        raise BadRequest(400, b"chunked must be the final transfer coding, once\n")
    if len(codings) > 1:
        raise BadRequest(501, b"unsupported transfer coding\n")
    return "chunked"


def valid_authority(authority: bytes) -> bool:
    """``uri-host [":" port]`` (RFC 3986 §3.2.2): a reg-name (which covers IPv4 addresses),
    or an IPv6 address or IPvFuture in brackets; the port 1-65535."""
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return False
    literal, port = match.group(1), match.group(2)
    if literal is not None and not literal.startswith(b"v"):
        try:
            ipaddress.IPv6Address(literal.decode("ascii"))
        except ValueError:
            return False
    return port is None or 0 < int(port) <= 65535


_VALID: BoundedMemo[bytes, bool] = BoundedMemo(valid_authority)
"""``valid_authority``, remembered: clients repeat the same few Host values."""


def request_target(
    url: bytes, method: bytes, headers: HeaderList
) -> tuple[bytes, bytes, bytes | None]:
    """``(path, query, authority of an absolute-form target or None)``. For absolute-form,
    ``headers``' Host is replaced by that authority."""
    try:
        path, query = split_target(url)
        return path, query, None
    except BadTarget as exc:
        if url == b"*" and method == b"OPTIONS":
            return b"*", b"", None
        if not url.startswith((b"http://", b"https://")):
            raise BadRequest(400, str(exc).encode() + b"\n") from None
    try:
        # httptools declares its URL fields as bytes, but they are None when absent; compiled
        # code checks declared types, so the parsed URL is read untyped.
        parsed: Any = httptools.parse_url(url)
        target = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        path, query = split_target(target)
    except (httptools.HttpParserInvalidURLError, BadTarget):
        raise BadRequest(400, b"invalid request target\n") from None
    host = b"[" + parsed.host + b"]" if b":" in parsed.host else parsed.host  # IPv6
    authority = host + (b":%d" % parsed.port if parsed.port else b"")
    if not _VALID[authority]:
        raise BadRequest(400, b"invalid request target\n")
    headers[:] = [(n, v) for n, v in headers if n != b"host"] + [(b"host", authority)]
    return path, query, authority
