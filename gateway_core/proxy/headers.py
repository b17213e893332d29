"""Data path: header rewriting between downstream and upstream (RFC 9110 §7.6.1).

Hop-by-hop fields, and fields named in ``Connection``, are never forwarded. Tokens in
``Connection`` that name framing or identity fields (Content-Length, Host, Authorization, ...)
are ignored rather than obeyed, so a client cannot strip framing on its way upstream (hop-by-hop
header abuse). Names are forwarded in lower case, as Envoy does.
"""

from __future__ import annotations

import os
import re

from gateway_core.routing.actions import HeaderList
from gateway_core.utils.id_batch import IdBatch
from gateway_core.utils.memo import BoundedMemo

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"http2-settings",
        b"proxy-authenticate",
    }
)
# Connection may not remove these (they carry framing, routing or identity).
_PROTECTED = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"authorization",
        b"proxy-authorization",
        b"cookie",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"x-gateway-hops",
    }
)
# Set by this gateway on the way upstream; any client-sent copy is replaced (or extended for XFF;
# the loop guard decides what of a received x-gateway-hops goes on).
_GATEWAY_SET = frozenset(
    {
        b"host",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-request-id",
        b"expect",
        b"x-gateway-hops",
    }
)

SERVER_NAME = b"multicluster-gateway"


_REQUEST_DROP = HOP_BY_HOP | _GATEWAY_SET | {b"content-length"}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"server"}
_NO_TOKENS: frozenset[bytes] = frozenset()


def _tokens(value: bytes) -> frozenset[bytes]:
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip()) - _PROTECTED


_TOKENS: BoundedMemo[bytes, frozenset[bytes]] = BoundedMemo(_tokens, entries=256)
"""Peers send the same few Connection values over and over."""


def connection_tokens(value: bytes | None) -> frozenset[bytes]:
    """The field names a Connection value lists, lower case, minus those it may never name."""
    return _TOKENS[value] if value else _NO_TOKENS


# What a Connection value names beyond each drop set (often nothing: ``keep-alive``, ``close``).
_REQUEST_EXTRA: BoundedMemo[bytes, frozenset[bytes]] = BoundedMemo(
    lambda value: _TOKENS[value] - _REQUEST_DROP, entries=256
)
_RESPONSE_EXTRA: BoundedMemo[bytes, frozenset[bytes]] = BoundedMemo(
    lambda value: _TOKENS[value] - _RESPONSE_DROP, entries=256
)


_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
"""RFC 4122: the high nibble of byte 6 is the version, 4."""
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
"""RFC 4122: the two high bits of byte 8 are the variant, 10."""
_UUID_GROUPS = re.compile(rb"(.{8})(.{4})(.{4})(.{4})(.{12})", re.DOTALL)


def _uuid4_batch() -> list[bytes]:
    """256 random UUID4s in text form from one 4 KiB read of kernel randomness; every step
    runs over the whole batch in C, which makes an id far cheaper than one at a time."""
    raw = bytearray(os.urandom(4096))
    raw[6::16] = raw[6::16].translate(_VERSION)
    raw[8::16] = raw[8::16].translate(_VARIANT)
    return list(map(b"-".join, _UUID_GROUPS.findall(raw.hex().encode())))


new_request_id = IdBatch(_uuid4_batch).next
"""A random UUID4 in its usual text form (cheaper than ``uuid.uuid4()``)."""


Forwarded = tuple[HeaderList, bytes, bytes, bytes]
"""``forwarded_fields``: the fields passed on as they are (neither hop-by-hop nor set by the
gateway), then the X-Forwarded-For, -Proto and -Host values to send."""


def forwarded_fields(
    raw: HeaderList,
    *,
    client_ip: bytes,
    scheme: bytes,
    original_authority: bytes,
    trust_forwarded: bool,
) -> Forwarded:
    """Split a request's fields into those forwarded as they are and the X-Forwarded-* values
    the gateway sends (Host and X-Request-Id are the caller's)."""
    kept: HeaderList = []
    xff: bytes | None = None
    xfp: bytes | None = None
    xfh: bytes | None = None
    connection: bytes | None = None
    drop = _REQUEST_DROP
    for field in raw:
        name = field[0]
        if name in drop:
            if name == b"connection":
                if connection is None:
                    connection = field[1]
            elif trust_forwarded and name == b"x-forwarded-proto":
                xfp = field[1]
            elif trust_forwarded and name == b"x-forwarded-host":
                xfh = field[1]
            continue
        if name == b"x-forwarded-for":
            xff = field[1] if xff is None else xff + b", " + field[1]
            continue
        kept.append(field)
    return (
        _without(kept, _REQUEST_EXTRA[connection]) if connection else kept,
        xff + b", " + client_ip if xff else client_ip,
        xfp or scheme,  # the trusted hop's values, else this connection's
        xfh or original_authority,
    )


def upstream_request_headers(
    raw: HeaderList,
    *,
    authority: bytes,
    client_ip: bytes,
    scheme: bytes,
    original_authority: bytes,
    trust_forwarded: bool,
    request_id: bytes,
) -> HeaderList:
    """Headers for the upstream request, before route header operations and body framing."""
    kept, xff, xfp, xfh = forwarded_fields(
        raw,
        client_ip=client_ip,
        scheme=scheme,
        original_authority=original_authority,
        trust_forwarded=trust_forwarded,
    )
    return [
        (b"host", authority),
        *kept,
        (b"x-forwarded-for", xff),
        (b"x-forwarded-proto", xfp),
        (b"x-forwarded-host", xfh),
        (b"x-request-id", request_id),
    ]


def response_headers(raw: HeaderList) -> HeaderList:
    """Upstream response headers minus hop-by-hop and framing (the gateway re-frames the body)."""
    return response_fields(raw)[0]


def response_fields(raw: HeaderList) -> tuple[HeaderList, bytes | None]:
    """``response_headers``, and the first Content-Length value (None when there is none)."""
    out: HeaderList = []
    connection: bytes | None = None
    length: bytes | None = None
    drop = _RESPONSE_DROP
    for field in raw:
        name = field[0]
        if name in drop:
            if name == b"content-length":
                if length is None:
                    length = field[1]
            elif connection is None and name == b"connection":
                connection = field[1]
            continue
        out.append(field)
    return (_without(out, _RESPONSE_EXTRA[connection]) if connection else out), length


def _without(fields: HeaderList, named: frozenset[bytes]) -> HeaderList:
    """``fields`` without those a Connection header names (``named``, beyond the drop set that
    already left them out). Filtering after the fact is the same as before: names never include
    a field the gateway adds (``_PROTECTED``)."""
    return [f for f in fields if f[0] not in named] if named else fields


def serialize_request(method: bytes, target: bytes, headers: HeaderList) -> bytes:
    if not headers:
        return b"%s %s HTTP/1.1\r\n\r\n" % (method, target)
    return b"%s %s HTTP/1.1\r\n%s\r\n\r\n" % (method, target, fields_text(headers))


_NAME_VALUE = b": ".join


def fields_text(fields: HeaderList) -> bytes:
    """``name: value`` lines joined by CRLF, without the last CRLF (joined in C, not a loop)."""
    return b"\r\n".join(map(_NAME_VALUE, fields))
