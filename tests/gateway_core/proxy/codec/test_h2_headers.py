"""Tests for gateway_core/proxy/codec/h2_headers.py: RFC 9113 §8 field translation."""

from __future__ import annotations

import pytest
from hpack import NeverIndexedHeaderTuple

from gateway_core.proxy.codec.events import Fields
from gateway_core.proxy.codec.h2_headers import (
    MalformedHeaders,
    parse_request,
    parse_response,
    parse_trailers,
    request_to_h2,
    response_to_h2,
    trailers_to_h2,
)

PSEUDO: Fields = [
    (b":method", b"GET"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/a?b=c"),
]


def test_request_splits_pseudo_headers_from_fields() -> None:
    fields = [*PSEUDO, (b"accept", b"*/*"), (b"te", b"trailers")]
    assert parse_request(fields, 100) == (
        b"GET",
        b"https",
        b"example.com",
        b"/a?b=c",
        [(b"accept", b"*/*"), (b"te", b"trailers")],
    )


def test_request_cookie_crumbs_are_joined_for_http1() -> None:
    fields = [*PSEUDO, (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2")]
    *_, headers = parse_request(fields, 100)
    assert headers == [(b"x", b"y"), (b"cookie", b"a=1; b=2")]


def test_host_stands_in_for_a_missing_authority_and_is_never_a_field() -> None:
    fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/"), (b"host", b"h:81")]
    parsed = parse_request(fields, 100)
    assert (parsed[2], parsed[4]) == (b"h:81", [])
    same = [*PSEUDO, (b"host", b"example.com")]
    assert parse_request(same, 100)[2:] == (b"example.com", b"/a?b=c", [])


def test_connect_carries_only_method_and_authority() -> None:
    fields = [(b":method", b"CONNECT"), (b":authority", b"db:5432")]
    assert parse_request(fields, 100) == (b"CONNECT", b"", b"db:5432", b"", [])


def test_options_asterisk_is_a_valid_path() -> None:
    fields = [(b":method", b"OPTIONS"), (b":scheme", b"http"), (b":path", b"*"), (b"host", b"h")]
    assert parse_request(fields, 100)[3] == b"*"


def _swap(name: bytes, value: bytes) -> Fields:
    return [(n, value if n == name else v) for n, v in PSEUDO]


MALFORMED_REQUESTS: list[tuple[str, Fields]] = [
    ("uppercase field name", [*PSEUDO, (b"Accept", b"x")]),
    ("space in field name", [*PSEUDO, (b"a b", b"x")]),
    ("empty field name", [*PSEUDO, (b"", b"x")]),
    ("NUL in value", [*PSEUDO, (b"x", b"a\x00b")]),
    ("CR LF in value", [*PSEUDO, (b"x", b"a\r\nb: c")]),
    ("leading space in value", [*PSEUDO, (b"x", b" a")]),
    ("trailing tab in value", [*PSEUDO, (b"x", b"a\t")]),
    ("pseudo-header after a field", [*PSEUDO[:3], (b"x", b"y"), PSEUDO[3]]),
    ("unknown pseudo-header", [*PSEUDO, (b":foo", b"bar")]),
    ("response pseudo-header in a request", [(b":status", b"200"), *PSEUDO]),
    (":protocol without extended CONNECT", [(b":protocol", b"websocket"), *PSEUDO]),
    ("repeated :path", [*PSEUDO, (b":path", b"/b")]),
    ("missing :method", PSEUDO[1:]),
    ("missing :scheme", [PSEUDO[0], *PSEUDO[2:]]),
    ("missing :path", PSEUDO[:3]),
    ("empty :path", _swap(b":path", b"")),
    ("absolute-form :path", _swap(b":path", b"http://evil/")),
    ("asterisk :path on GET", _swap(b":path", b"*")),
    ("unsupported :scheme", _swap(b":scheme", b"ftp")),
    ("method that is not a token", _swap(b":method", b"G T")),
    ("missing authority and host", [PSEUDO[0], PSEUDO[1], PSEUDO[3]]),
    ("userinfo in authority", _swap(b":authority", b"user@example.com")),
    ("quote in authority", _swap(b":authority", b'h<x>"')),
    ("host differing from authority", [*PSEUDO, (b"host", b"other.example")]),
    ("two host fields", [*PSEUDO[:2], PSEUDO[3], (b"host", b"a"), (b"host", b"a")]),
    ("connection field", [*PSEUDO, (b"connection", b"close")]),
    ("keep-alive field", [*PSEUDO, (b"keep-alive", b"5")]),
    ("proxy-connection field", [*PSEUDO, (b"proxy-connection", b"x")]),
    ("transfer-encoding field", [*PSEUDO, (b"transfer-encoding", b"chunked")]),
    ("upgrade field", [*PSEUDO, (b"upgrade", b"h2c")]),
    ("te other than trailers", [*PSEUDO, (b"te", b"gzip")]),
    ("CONNECT with a path", [(b":method", b"CONNECT"), (b":authority", b"a:1"), (b":path", b"/")]),
]


@pytest.mark.parametrize(
    ("case", "fields"), MALFORMED_REQUESTS, ids=[c for c, _ in MALFORMED_REQUESTS]
)
def test_malformed_requests_are_rejected(case: str, fields: Fields) -> None:
    with pytest.raises(MalformedHeaders):
        parse_request(fields, 100)


def test_request_with_too_many_fields_is_rejected() -> None:
    fields = PSEUDO + [(b"x-%d" % i, b"v") for i in range(7)]
    assert parse_request(fields, 11)[0] == b"GET"
    with pytest.raises(MalformedHeaders):
        parse_request(fields, 10)


def test_response_status_and_fields() -> None:
    assert parse_response([(b":status", b"204"), (b"x", b"y")], 100) == (204, [(b"x", b"y")])
    assert parse_response([(b":status", b"103"), (b"link", b"</a>")], 100)[0] == 103
    # te: trailers means nothing in a response: dropped, not fatal
    assert parse_response([(b":status", b"200"), (b"te", b"trailers")], 100) == (200, [])


@pytest.mark.parametrize(
    "fields",
    [
        [],
        [(b"x", b"y")],
        [(b":status", b"20")],
        [(b":status", b"2000")],
        [(b":status", b"abc")],
        [(b":status", b"099")],
        [(b":status", b"101")],
        [(b":status", b"200"), (b":status", b"200")],
        [(b":status", b"200"), (b":path", b"/")],
        [(b":status", b"200"), (b"transfer-encoding", b"chunked")],
        [(b":status", b"200"), (b"X-Upper", b"1")],
    ],
)
def test_malformed_responses_are_rejected(fields: Fields) -> None:
    with pytest.raises(MalformedHeaders):
        parse_response(fields, 100)


def test_trailers_are_regular_fields_only() -> None:
    assert parse_trailers([(b"grpc-status", b"0"), (b"grpc-message", b"")], 100) == [
        (b"grpc-status", b"0"),
        (b"grpc-message", b""),
    ]
    for bad in ([(b":status", b"200")], [(b"connection", b"x")], [(b"Grpc-Status", b"0")]):
        with pytest.raises(MalformedHeaders):
            parse_trailers(bad, 100)


def test_request_to_h2_maps_host_to_authority_and_drops_connection_fields() -> None:
    block = request_to_h2(
        b"POST",
        b"https",
        b"svc.example:8443",
        b"/pkg.Svc/Call",
        [
            (b"Host", b"ignored.example"),
            (b"Content-Type", b"application/grpc"),
            (b"Connection", b"keep-alive, X-Hop"),
            (b"x-hop", b"1"),
            (b"Keep-Alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"websocket"),
            (b"proxy-connection", b"keep-alive"),
            (b"te", b"trailers, deflate"),
            (b"x-pad", b"  spaced  "),
        ],
    )
    assert block == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"svc.example:8443"),
        (b":path", b"/pkg.Svc/Call"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"x-pad", b"spaced"),
    ]


def test_request_to_h2_drops_te_that_does_not_ask_for_trailers() -> None:
    assert request_to_h2(b"GET", b"http", b"h", b"/", [(b"te", b"gzip")])[4:] == []


def test_request_cookie_is_split_into_crumbs_and_credentials_are_never_indexed() -> None:
    long_crumb = b"session=" + b"s" * 40
    block = request_to_h2(
        b"GET",
        b"https",
        b"h",
        b"/",
        [(b"cookie", b"a=1; " + long_crumb), (b"authorization", b"Bearer t")],
    )
    assert block[4:] == [
        (b"cookie", b"a=1"),
        (b"cookie", long_crumb),
        (b"authorization", b"Bearer t"),
    ]
    assert isinstance(block[4], NeverIndexedHeaderTuple)  # short: guessable from compression
    assert not isinstance(block[5], NeverIndexedHeaderTuple)
    assert isinstance(block[6], NeverIndexedHeaderTuple)


def test_request_to_h2_connect_has_no_scheme_or_path() -> None:
    assert request_to_h2(b"CONNECT", b"", b"db:5432", b"", []) == [
        (b":method", b"CONNECT"),
        (b":authority", b"db:5432"),
    ]


def test_response_to_h2_puts_status_first_and_keeps_set_cookie_whole() -> None:
    block = response_to_h2(
        404,
        [(b"Set-Cookie", b"a=1; Path=/"), (b"connection", b"close"), (b"te", b"trailers")],
    )
    assert block == [(b":status", b"404"), (b"set-cookie", b"a=1; Path=/")]
    with pytest.raises(ValueError, match="outside"):
        response_to_h2(600, [])


def test_trailers_to_h2() -> None:
    assert trailers_to_h2([(b"Grpc-Status", b"0"), (b"transfer-encoding", b"x")]) == [
        (b"grpc-status", b"0")
    ]
