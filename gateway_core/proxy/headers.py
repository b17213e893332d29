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


def connection_tokens(value: bytes | None) -> frozenset[bytes]:
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(b",") if t.strip()) - _PROTECTED


class _RandomBytes:
    """Kernel randomness fetched 4 KiB at a time: one system call per 256 request ids."""

    __slots__ = ("buffer", "offset")

    def __init__(self) -> None:
        self.buffer = b""
        self.offset = 0

    def take16(self) -> bytearray:
        if self.offset + 16 > len(self.buffer):
            self.buffer, self.offset = os.urandom(4096), 0
        start = self.offset
        self.offset = start + 16
        return bytearray(self.buffer[start : start + 16])


_RANDOM = _RandomBytes()
# A forked child must not hand out the ids left in its parent's buffer.
os.register_at_fork(after_in_child=lambda: setattr(_RANDOM, "buffer", b""))


def new_request_id() -> bytes:
    """A random UUID4 in its usual text form (cheaper than ``uuid.uuid4()``)."""
    raw = _RANDOM.take16()
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex().encode()
    return b"%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


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
    drop = HOP_BY_HOP | connection_tokens(_get(raw, b"connection")) | _GATEWAY_SET
    out: HeaderList = [(b"host", authority)]
    xff: bytes | None = None
    xfp: bytes | None = None
    xfh: bytes | None = None
    for name, value in raw:
        if name in drop or name == b"content-length":
            if trust_forwarded and name == b"x-forwarded-proto":
                xfp = value
            elif trust_forwarded and name == b"x-forwarded-host":
                xfh = value
            continue
        if name == b"x-forwarded-for":
            xff = value if xff is None else xff + b", " + value
            continue
        out.append((name, value))
    out.append((b"x-forwarded-for", xff + b", " + client_ip if xff else client_ip))
    out.append((b"x-forwarded-proto", xfp or scheme))
    out.append((b"x-forwarded-host", xfh or original_authority))
    out.append((b"x-request-id", request_id))
    return out


def response_headers(raw: HeaderList) -> HeaderList:
    """Upstream response headers minus hop-by-hop and framing (the gateway re-frames the body)."""
    drop = HOP_BY_HOP | connection_tokens(_get(raw, b"connection"))
    return [(n, v) for n, v in raw if n not in drop and n != b"content-length" and n != b"server"]


def serialize_request(method: bytes, target: bytes, headers: HeaderList) -> bytes:
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def _get(headers: HeaderList, name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None
