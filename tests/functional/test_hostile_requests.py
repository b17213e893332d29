"""Functional: 47 hostile HTTP/1.1 requests (P01-P47) against a strict gateway.

They cover request smuggling through framing (Content-Length with Transfer-Encoding, bad or
duplicate lengths and chunk sizes: RFC 9112 §6.1, §6.3, §7.1; RFC 9110 §8.6), field syntax (CR,
LF or NUL in values, obs-fold, whitespace before the colon: RFC 9110 §5.5, RFC 9112 §2.2, §5.1,
§5.2), Host and request-target rules (RFC 9112 §3, §3.2), size limits (414, and 431 of RFC 6585
§5), pipelining (RFC 9112 §9.3.2), hop-by-hop fields and trailers (RFC 9110 §7.6.1, §6.5), the
h2c upgrade (RFC 9113 §3.1) and dot-segments (RFC 3986 §5.2.4, §6.2.2).

Each request goes on a fresh connection as the exact bytes of the corpus. The gateway either
rejects it (the status of the "correct strict behaviour" column, and a close where framing is
unrecoverable; no complete request reaches the upstream) or forwards it canonically, which a
raw capturing upstream checks byte for byte. ``/admin`` is answered by its own rule (403), so
requests smuggled or normalised into ``/admin`` show up as that rule's answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import free_port
from tests.functional.support import (
    RawRequest,
    RawResponse,
    capture_upstream,
    config,
    send_raw,
)

H = b"Host: h\r\n"

Check = Callable[[list[RawResponse], bool, list[RawRequest]], None]


@dataclass(frozen=True)
class Case:
    raw: bytes
    check: Check
    responses: int = 1


def reject(*statuses: int, close: bool = True) -> Check:
    """Answered with one of ``statuses`` (closing when framing is unrecoverable); nothing is
    forwarded."""

    def check(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
        assert resps, "no response before the connection closed"
        assert resps[0].status in statuses
        if close:
            assert closed, "connection left open after a framing error"
        assert upstream == []

    return check


def forward(verify: Callable[[RawRequest], None], status: int = 200) -> Check:
    """Forwarded once, canonically; the client gets the upstream's answer and keeps its
    connection."""

    def check(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
        assert [r.status for r in resps] == [status]
        assert len(upstream) == 1
        req = upstream[0]
        assert len(req.all(b"host")) == 1
        assert len(req.all(b"content-length")) + len(req.all(b"transfer-encoding")) <= 1
        assert b"\r\n" not in req.raw_head.replace(b"\r\n", b"")
        verify(req)

    return check


def body_is(expected: bytes, length: bytes | None = None) -> Callable[[RawRequest], None]:
    def verify(req: RawRequest) -> None:
        assert req.body == expected
        if length is not None:
            assert req.header(b"content-length") == length

    return verify


def p11(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
    """``Content-Length: 5, 5``: 400 + close, or forwarded with one ``Content-Length: 5``."""
    if resps and resps[0].status == 400:
        reject(400)(resps, closed, upstream)
    else:
        forward(body_is(b"hello", b"5"))(resps, closed, upstream)


def p29(req: RawRequest) -> None:
    assert req.body == b"hello"
    assert req.header(b"content-length") == b"5"
    assert req.header(b"transfer_encoding") is None
    assert req.header(b"transfer-encoding") is None


def p33(req: RawRequest) -> None:
    assert req.header(b"host") == b"evil"
    assert req.target == b"/"


def p38(req: RawRequest) -> None:
    assert req.target == b"/a"


def p43(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
    """Two answers in order; the second request is routed on its own (to the /admin rule)."""
    assert [(r.status, r.body) for r in resps] == [(200, b"ok"), (403, b"admin")]
    assert [(r.method, r.target) for r in upstream] == [(b"POST", b"/")]


def p45(req: RawRequest) -> None:
    assert req.body == b"hello"
    assert req.header(b"host") == b"h"
    assert req.trailers == []


def p46(req: RawRequest) -> None:
    names = {n for n, _ in req.headers}
    assert not names & {b"upgrade", b"http2-settings", b"connection"}


def p47(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
    """``/public/%2e%2e/admin`` is routed as ``/admin``."""
    assert [(r.status, r.body) for r in resps] == [(403, b"admin")]
    assert upstream == []


def lf_or_canonical(resps: list[RawResponse], closed: bool, upstream: list[RawRequest]) -> None:
    """Bare-LF line ends: 400, or accepted and re-emitted with CRLF."""
    if resps and resps[0].status == 400:
        reject(400, close=False)(resps, closed, upstream)
    else:
        forward(lambda req: None)(resps, closed, upstream)


CORPUS: dict[str, Case] = {
    "P01": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
        reject(400),
    ),
    "P02": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
        reject(400),
    ),
    "P03": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\n\r\n0\r\n\r\n",
        reject(400, 501),
    ),
    "P04": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello",
        reject(400, 501),
    ),
    "P05": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello",
        reject(400),
    ),
    "P06": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding:\x0bchunked\r\nContent-Length: 5\r\n\r\nhello",
        reject(400, 501),
    ),
    "P07": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello",
        reject(400),
    ),
    "P08": Case(
        b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        reject(400),
    ),
    "P09": Case(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", reject(400, 501)),
    "P10": Case(
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        reject(400),
    ),
    "P11": Case(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", p11),
    "P12": Case(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", reject(400)),
    "P13": Case(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", reject(400)),
    "P14": Case(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", reject(400)),
    "P15": Case(
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n",
        reject(400, 413),
    ),
    "P16": Case(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", reject(400)),
    "P17": Case(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
        reject(400),
    ),
    "P18": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n",
        reject(400),
    ),
    "P19": Case(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello!!\r\n0\r\n\r\n",
        reject(400),
    ),
    "P20": Case(
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n",
        reject(400),
    ),
    "P21": Case(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", reject(400)),
    "P22": Case(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", reject(400)),
    "P23": Case(b"GET / HTTP/1.1\nHost: h\nX-A: b\n\n", lf_or_canonical),
    "P24": Case(b"GET / HTTP/1.1\r\n X-A: y\r\nHost: h\r\n\r\n", reject(400)),
    "P25": Case(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", reject(400)),
    "P26": Case(b"GET / HTTP/1.1\r\n" + H + b"Foo Bar: x\r\n\r\n", reject(400)),
    "P27": Case(b"GET / HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", reject(400)),
    "P28": Case(b"GET / HTTP/1.1\r\n" + H + b": x\r\n\r\n", reject(400)),
    "P29": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
        forward(p29),
    ),
    "P30": Case(b"GET / HTTP/1.1\r\n\r\n", reject(400)),
    "P31": Case(b"GET / HTTP/1.1\r\n" + H + b"Host: evil\r\n\r\n", reject(400)),
    "P32": Case(b"GET / HTTP/1.1\r\nHost: h, evil\r\n\r\n", reject(400)),
    "P33": Case(b"GET http://evil/ HTTP/1.1\r\nHost: h\r\n\r\n", forward(p33)),
    "P34": Case(b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", reject(400)),
    "P35": Case(b"CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", reject(400, 405, 501)),
    "P36": Case(b"GET / HTTP/1.32\r\nHost: h\r\n\r\n", reject(400, 505)),
    "P37": Case(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", reject(400)),
    "P38": Case(b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n", forward(p38)),
    "P39": Case(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n" + H + b"\r\n", reject(414)),
    "P40": Case(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 80000 + b"\r\n\r\n", reject(431)),
    "P41": Case(
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n",
        reject(431),
    ),
    "P42": Case(b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n", reject(400)),
    "P43": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n",
        p43,
        responses=2,
    ),
    "P44": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
        forward(body_is(b"hello", b"5")),
    ),
    "P45": Case(
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n"
        b"Host: evil\r\n\r\n",
        forward(p45),
    ),
    "P46": Case(
        b"GET / HTTP/1.1\r\n" + H + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
        forward(p46),
    ),
    "P47": Case(b"GET /public/%2e%2e/admin HTTP/1.1\r\nHost: h\r\n\r\n", p47),
}

RULES = """\
  - match: [{uri: {exact: /admin}}]
    directResponse: {status: 403, body: {string: admin}}
  - route: [{destination: {host: up.svc}}]
"""


def test_corpus_is_complete() -> None:
    """All 47 requests, P01 to P47, are in the corpus."""
    assert sorted(CORPUS) == [f"P{i:02d}" for i in range(1, 48)]


@pytest.mark.parametrize("case_id", sorted(CORPUS))
async def test_hostile_request(gateway: Callable[..., Any], case_id: str) -> None:
    """Each hostile request is rejected with the strict status (and a close when framing is
    broken) or forwarded canonically, as the RFC sections in the module docstring require."""
    case = CORPUS[case_id]
    async with capture_upstream() as up:
        port = free_port()
        await gateway(config(port, RULES, {"up.svc": [up.port]}))
        responses, closed = await send_raw(
            port, case.raw, count=case.responses, within=3.0, close_wait=0.5
        )
        forwarded = list(up.requests)
    case.check(responses, closed, forwarded)
