"""Tests for gateway_core/proxy/headers.py: hop-by-hop removal and forwarding headers."""

from __future__ import annotations

import re

from gateway_core.proxy.headers import (
    connection_tokens,
    new_request_id,
    response_headers,
    serialize_request,
    upstream_request_headers,
)


def forward(raw: list[tuple[bytes, bytes]], trust: bool = False) -> list[tuple[bytes, bytes]]:
    return upstream_request_headers(
        raw,
        authority=b"up:80",
        client_ip=b"10.0.0.9",
        scheme=b"http",
        original_authority=b"orig",
        trust_forwarded=trust,
        request_id=b"rid",
    )


def test_connection_tokens_never_name_framing_or_identity_fields() -> None:
    """Connection may remove ordinary fields but never Content-Length, Host, Authorization."""
    tokens = connection_tokens(b"Keep-Alive, X-Foo, Content-Length, Host, authorization")
    assert tokens == frozenset({b"keep-alive", b"x-foo"})
    assert connection_tokens(None) == frozenset()


def test_hop_by_hop_and_connection_named_fields_dropped() -> None:
    """Hop-by-hop fields and fields named in Connection are not forwarded; Host is replaced."""
    raw = [
        (b"host", b"client"),
        (b"connection", b"x-foo"),
        (b"x-foo", b"1"),
        (b"keep-alive", b"5"),
        (b"te", b"trailers"),
        (b"upgrade", b"h2c"),
        (b"http2-settings", b"AA"),
        (b"x-kept", b"2"),
        (b"content-length", b"9"),
    ]
    out = forward(raw)
    assert out[0] == (b"host", b"up:80")
    names = [n for n, _ in out]
    assert b"x-foo" not in names and b"keep-alive" not in names and b"te" not in names
    assert b"upgrade" not in names and b"http2-settings" not in names
    assert b"content-length" not in names  # the caller re-frames the body
    assert (b"x-kept", b"2") in out


def test_forwarding_headers_untrusted() -> None:
    """At the edge XFF gets the client appended; -Proto/-Host/x-request-id are the gateway's."""
    raw = [
        (b"x-forwarded-for", b"1.1.1.1"),
        (b"x-forwarded-for", b"2.2.2.2"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"spoof"),
        (b"x-request-id", b"client-id"),
    ]
    out = dict(forward(raw))
    assert out[b"x-forwarded-for"] == b"1.1.1.1, 2.2.2.2, 10.0.0.9"
    assert out[b"x-forwarded-proto"] == b"http"
    assert out[b"x-forwarded-host"] == b"orig"
    assert out[b"x-request-id"] == b"rid"


def test_forwarding_headers_trusted_hop() -> None:
    """Behind a trusted hop its X-Forwarded-Proto and -Host are kept."""
    out = dict(forward([(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"o")], True))
    assert (out[b"x-forwarded-proto"], out[b"x-forwarded-host"]) == (b"https", b"o")


def test_response_headers_drop_hop_by_hop_framing_and_server() -> None:
    """The gateway re-frames responses and names itself; Connection-named fields go too."""
    raw = [
        (b"connection", b"x-h"),
        (b"x-h", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"3"),
        (b"server", b"pod"),
        (b"x-kept", b"1"),
    ]
    assert response_headers(raw) == [(b"x-kept", b"1")]


def test_request_id_is_uuid4() -> None:
    """Generated request ids are RFC 4122 version-4 UUIDs and differ each time."""
    first, second = new_request_id(), new_request_id()
    pattern = rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    assert re.match(pattern, first) and re.match(pattern, second)
    assert first != second


def test_request_ids_stay_uuid4_across_batches() -> None:
    """Ids come in batches of 256: over several batches each is a version-4 UUID with the
    RFC 4122 variant, and none repeats."""
    pattern = re.compile(rb"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    ids = [new_request_id() for _ in range(1000)]
    assert all(pattern.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert {i[19:20] for i in ids} == {b"8", b"9", b"a", b"b"}


def test_serialize_request() -> None:
    """Requests go out as HTTP/1.1 with CRLF line ends."""
    head = serialize_request(b"GET", b"/x", [(b"host", b"h"), (b"a", b"b")])
    assert head == b"GET /x HTTP/1.1\r\nhost: h\r\na: b\r\n\r\n"
