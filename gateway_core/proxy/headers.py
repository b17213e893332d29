"""Data path: header rewriting between downstream and upstream (RFC 9110 §7.6.1).

Hop-by-hop fields, and fields named in ``Connection``, are never forwarded. Tokens in
``Connection`` that name framing or identity fields (Content-Length, Host, Authorization, ...)
are ignored rather than obeyed, so a client cannot strip framing on its way upstream (hop-by-hop
header abuse). Names are forwarded in lower case, as Envoy does.
"""

from __future__ import annotations

import os

from gateway_core.routing.actions import HeaderList

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
    }
)
# Set by this gateway on the way upstream; any client-sent copy is replaced (or extended for XFF).
_GATEWAY_SET = frozenset(
    {b"host", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id", b"expect"}
)

SERVER_NAME = b"multicluster-gateway"


_REQUEST_DROP = HOP_BY_HOP | _GATEWAY_SET | {b"content-length"}
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"server"}
_NO_TOKENS: frozenset[bytes] = frozenset()
_TOKENS: dict[bytes, frozenset[bytes]] = {}
"""``connection_tokens`` results: peers send the same few Connection values over and over."""
_EXTRA: dict[tuple[bytes, frozenset[bytes]], frozenset[bytes]] = {}
"""``_without_tokens``: the tokens of a value that a drop set does not cover already."""
_MEMO_LIMIT = 256


def connection_tokens(value: bytes | None) -> frozenset[bytes]:
    if not value:
        return _NO_TOKENS
    tokens = _TOKENS.get(value)
    if tokens is None:
        if len(_TOKENS) >= _MEMO_LIMIT:
            _TOKENS.clear()
        tokens = frozenset(t.strip().lower() for t in value.split(b",") if t.strip()) - _PROTECTED
        _TOKENS[value] = tokens
    return tokens


class _RandomIds:
    """Request ids from kernel randomness fetched 4 KiB at a time, as hex digits: one system
    call and one hex conversion per 256 ids."""

    __slots__ = ("digits", "offset")

    def __init__(self) -> None:
        self.digits = b""
        self.offset = 0

    def next(self) -> bytes:
        """A random UUID4 in its usual text form, from 32 digits not handed out before."""
        h = self.digits
        i = self.offset
        if i + 32 > len(h):
            h = self.digits = os.urandom(4096).hex().encode()
            i = 0
        self.offset = i + 32
        fields = (
            h[i : i + 8],
            h[i + 8 : i + 12],
            h[i + 13 : i + 16],  # the version digit (12) is 4: the format has it
            _VARIANT[h[i + 16]],
            h[i + 17 : i + 20],
            h[i + 20 : i + 32],
        )
        return b"%s-%s-4%s-%s%s-%s" % fields


# RFC 4122 variant: the high nibble of byte 8 becomes 10xx (8, 9, a or b).
_VARIANT = {c: b"89ab"[int(chr(c), 16) & 3 :][:1] for c in b"0123456789abcdef"}
_IDS = _RandomIds()
# A forked child must not hand out the ids left in its parent's buffer.
os.register_at_fork(after_in_child=lambda: setattr(_IDS, "digits", b""))
new_request_id = _IDS.next
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
        _without_tokens(kept, connection, drop) if connection else kept,
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
    return (_without_tokens(out, connection, drop) if connection else out), length


def _without_tokens(fields: HeaderList, connection: bytes, dropped: frozenset[bytes]) -> HeaderList:
    """``fields`` (what ``dropped`` left) without those the first Connection header names.
    Filtering after the fact is the same as before: tokens never name a field the gateway
    adds (``_PROTECTED``). ``Connection: keep-alive`` or ``close`` usually name nothing left."""
    key = (connection, dropped)
    extra = _EXTRA.get(key)
    if extra is None:
        if len(_EXTRA) >= _MEMO_LIMIT:
            _EXTRA.clear()
        extra = _EXTRA[key] = connection_tokens(connection) - dropped
    return [f for f in fields if f[0] not in extra] if extra else fields


def serialize_request(method: bytes, target: bytes, headers: HeaderList) -> bytes:
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
