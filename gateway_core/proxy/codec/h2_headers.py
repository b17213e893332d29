"""Data path: header fields between HTTP/2 and the codec events (RFC 9113 §8.2 and §8.3).

Inbound, a received header block is validated in one pass and split into the request or
response attributes and the regular fields; anything RFC 9113 §8.1.1 calls malformed raises
:class:`MalformedHeaders` and the codec resets that stream with PROTOCOL_ERROR. The checks:
field names are lower-case tokens, values hold no NUL/CR/LF and no surrounding whitespace,
pseudo-header fields come first, are known, are not repeated and match the message kind
(``:method``, ``:scheme`` and ``:path`` required unless CONNECT), connection-specific fields
(``connection``, ``keep-alive``, ``proxy-connection``, ``transfer-encoding``, ``upgrade``)
are absent and ``te`` says nothing but ``trailers``. ``Host`` becomes the authority when
``:authority`` is missing and must agree with it otherwise; ``cookie`` crumbs are joined with
``"; "`` (§8.2.3) so an HTTP/1 codec can write them as one field.

Outbound, event fields become an HTTP/2 block: pseudo-header fields first, names lower-cased,
connection-specific fields and those the ``Connection`` field names dropped, ``te`` kept only
as ``trailers``, ``host`` dropped (``:authority`` carries it), a request's cookie split into
crumbs for better compression, credentials never indexed by HPACK.

h2's own validation (``validate_inbound_headers``) does the same checks, but as a connection
error and through several per-character Python loops; here each name and value costs one
regular-expression search, and a malformed request only loses its own stream.
"""

from __future__ import annotations

import re

from hpack import NeverIndexedHeaderTuple

from gateway_core.proxy.codec.events import Fields

CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
# Regular fields that need more than the generic checks, inbound and outbound.
_SPECIAL = CONNECTION_SPECIFIC | {b"te", b"host", b"cookie"}
_SENSITIVE = frozenset({b"authorization", b"proxy-authorization"})
_SHORT_COOKIE = 20
"""Cookies shorter than this are guessable from compression ratios: never index them (h2's rule)."""

_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-z]")
_BAD_VALUE = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_AUTHORITY = re.compile(rb"[^A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]")
_SCHEMES = frozenset({b"http", b"https"})
_STATUS = {code: b"%d" % code for code in range(100, 600)}


class MalformedHeaders(Exception):
    """A received header block that RFC 9113 §8.1.1 calls malformed."""


def _regular(fields: Fields, start: int, request: bool) -> tuple[Fields, bytes | None]:
    """Check the regular fields from ``start`` on; returns them and a request's Host value."""
    out: Fields = []
    host: bytes | None = None
    cookies: list[bytes] | None = None
    for i in range(start, len(fields)):
        name, value = fields[i]
        if not name or _BAD_NAME.search(name) is not None:
            if name[:1] == b":":
                raise MalformedHeaders(f"pseudo-header field {name!r} after a regular field")
            raise MalformedHeaders(f"invalid field name {name!r}")
        if value and _BAD_VALUE.search(value) is not None:
            raise MalformedHeaders(f"invalid value in field {name!r}")
        if name in _SPECIAL:
            if name in CONNECTION_SPECIFIC:
                raise MalformedHeaders(f"connection-specific field {name!r}")
            if name == b"te":
                if value.lower() != b"trailers":
                    raise MalformedHeaders("te other than trailers")
                if not request:
                    continue
            elif name == b"host" and request:
                if host is not None:
                    raise MalformedHeaders("more than one host field")
                host = value
                continue
            elif name == b"cookie" and request:
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
                continue
        out.append((name, value))
    if cookies is not None:
        out.append((b"cookie", b"; ".join(cookies)))
    return out, host


def parse_request(fields: Fields, max_fields: int) -> tuple[bytes, bytes, bytes, bytes, Fields]:
    """A request block as ``(method, scheme, authority, path, fields)``; raises if malformed."""
    if len(fields) > max_fields:
        raise MalformedHeaders(f"more than {max_fields} header fields")
    method = scheme = authority = path = None
    i = 0
    for i, (name, value) in enumerate(fields):  # noqa: B007 - i is where the regular fields start
        if name[:1] != b":":
            break
        if value and _BAD_VALUE.search(value) is not None:
            raise MalformedHeaders(f"invalid value in {name!r}")
        if name == b":method" and method is None:
            method = value
        elif name == b":path" and path is None:
            path = value
        elif name == b":scheme" and scheme is None:
            scheme = value
        elif name == b":authority" and authority is None:
            authority = value
        else:
            raise MalformedHeaders(f"unexpected or repeated pseudo-header field {name!r}")
    else:
        i = len(fields)
    headers, host = _regular(fields, i, True)
    if method is None or _METHOD.fullmatch(method) is None:
        raise MalformedHeaders("missing or invalid :method")
    if method == b"CONNECT":
        if scheme is not None or path is not None:
            raise MalformedHeaders("CONNECT with :scheme or :path")
        scheme = path = b""
    else:
        if scheme is None or scheme not in _SCHEMES:
            raise MalformedHeaders("missing or unsupported :scheme")
        if not path or (path[0] != 0x2F and not (path == b"*" and method == b"OPTIONS")):
            raise MalformedHeaders("missing or invalid :path")
    if authority is None:
        authority = host
    elif host is not None and host != authority:
        raise MalformedHeaders("host and :authority differ")
    if not authority or _BAD_AUTHORITY.search(authority) is not None:
        raise MalformedHeaders("missing or invalid authority")
    return method, scheme, authority, path, headers


def parse_response(fields: Fields, max_fields: int) -> tuple[int, Fields]:
    """A response block as ``(status, fields)``; raises if malformed."""
    if len(fields) > max_fields:
        raise MalformedHeaders(f"more than {max_fields} header fields")
    if not fields or fields[0][0] != b":status":
        raise MalformedHeaders("missing :status")
    raw = fields[0][1]
    if len(raw) != 3 or not raw.isdigit() or raw[0] == 0x30 or raw == b"101":
        raise MalformedHeaders("invalid :status")  # 101 has no meaning in HTTP/2 (§8.6)
    return int(raw), _regular(fields, 1, False)[0]


def parse_trailers(fields: Fields, max_fields: int) -> Fields:
    """A trailer block's fields; raises if malformed (pseudo-header fields included)."""
    if len(fields) > max_fields:
        raise MalformedHeaders(f"more than {max_fields} header fields")
    return _regular(fields, 0, False)[0]


def _outbound(headers: Fields, out: Fields, request: bool) -> Fields:
    listed: list[bytes] | None = None
    for raw_name, raw_value in headers:
        name = raw_name.lower()
        value = raw_value
        if value and (value[0] in b" \t" or value[-1] in b" \t"):
            value = value.strip(b" \t")
        if name in _SPECIAL:
            if name == b"connection":
                listed = (listed or []) + [t.strip().lower() for t in value.split(b",")]
                continue
            if name == b"te":
                if request and b"trailers" in value.lower():
                    out.append((b"te", b"trailers"))
                continue
            if name == b"cookie" and request:
                for crumb in value.split(b"; "):
                    if len(crumb) < _SHORT_COOKIE:
                        out.append(NeverIndexedHeaderTuple(b"cookie", crumb))
                    else:
                        out.append((b"cookie", crumb))
                continue
            if name != b"cookie":
                continue  # host and the connection-specific fields
        if name in _SENSITIVE:
            out.append(NeverIndexedHeaderTuple(name, value))
        else:
            out.append((name, value))
    if listed:
        drop = frozenset(listed)
        return [field for field in out if field[0] not in drop or field[0][:1] == b":"]
    return out


def request_to_h2(
    method: bytes, scheme: bytes, authority: bytes, path: bytes, headers: Fields
) -> Fields:
    """The HTTP/2 block for a request: the pseudo-header fields, then ``headers`` translated."""
    if method == b"CONNECT":
        out: Fields = [(b":method", method), (b":authority", authority)]
    else:
        out = [
            (b":method", method),
            (b":scheme", scheme),
            (b":authority", authority),
            (b":path", path),
        ]
    return _outbound(headers, out, True)


def response_to_h2(status: int, headers: Fields) -> Fields:
    """The HTTP/2 block for a response: ``:status``, then ``headers`` translated."""
    code = _STATUS.get(status)
    if code is None:
        raise ValueError(f"status {status} is outside 100-599")
    return _outbound(headers, [(b":status", code)], False)


def trailers_to_h2(headers: Fields) -> Fields:
    """The HTTP/2 block for trailers: ``headers`` translated (no pseudo-header fields)."""
    return _outbound(headers, [], False)
