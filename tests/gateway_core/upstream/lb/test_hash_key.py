"""Request hash keys: header, cookie (parsing and generation), source IP, query parameter."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from gateway_core.snapshot import HashKeyKind, HashKeySpec
from gateway_core.upstream.lb.hash_key import (
    compute_hash_key,
    cookie_value,
    generate_cookie,
    hash64,
    should_generate_cookie,
)


def _no_query() -> Mapping[bytes, bytes]:
    raise AssertionError("query string parsed for a non-query policy")


def _key(spec: HashKeySpec, headers: dict[bytes, bytes], ip: str = "") -> int | None:
    return compute_hash_key(spec, headers, _no_query, ip)


def test_hash64_is_stable_and_seeded() -> None:
    """The hash is fixed across runs (BLAKE2b, 8 bytes) and seeds give other functions."""
    assert hash64(b"abc") == 6455300059550759896
    assert hash64(b"abc", 1) == 4882607893960367073
    assert 0 <= hash64(b"") < 2**64


def test_header_value_is_hashed() -> None:
    """The named header's value is the key; the name is matched case-insensitively."""
    spec = HashKeySpec(HashKeyKind.HEADER, "X-User")
    assert _key(spec, {b"x-user": b"alice"}) == hash64(b"alice")
    assert _key(spec, {b"x-user": b"bob"}) != _key(spec, {b"x-user": b"alice"})
    assert _key(spec, {b"other": b"alice"}) is None


def test_cookie_value_is_hashed_without_quotes() -> None:
    """The named cookie's value (quotes stripped) is the key; absent or empty -> None."""
    spec = HashKeySpec(HashKeyKind.COOKIE, "sticky")
    headers = {b"cookie": b'a=1; sticky="bc0e96c66ff8994b"; b=2'}
    assert _key(spec, headers) == hash64(b"bc0e96c66ff8994b")
    assert _key(spec, {b"cookie": b"a=1; stickyx=2"}) is None
    assert _key(spec, {b"cookie": b"sticky="}) is None
    assert _key(spec, {}) is None


def test_cookie_headers_joined_with_commas_are_split() -> None:
    """Two cookie headers joined with ',' by the request parser still yield the cookie."""
    assert cookie_value({b"cookie": b"a=1,sticky=xyz"}, "sticky") == "xyz"


def test_source_ip_is_hashed() -> None:
    """useSourceIp hashes the downstream address."""
    spec = HashKeySpec(HashKeyKind.SOURCE_IP)
    assert _key(spec, {}, "192.0.2.7") == hash64(b"192.0.2.7")
    assert _key(spec, {}, "") is None


def test_query_parameter_is_parsed_lazily_and_hashed() -> None:
    """The first value of the named query parameter is the key; absent -> None."""
    spec = HashKeySpec(HashKeyKind.QUERY_PARAMETER, "user")
    params = {b"user": b"42", b"x": b""}
    assert compute_hash_key(spec, {}, lambda: params, "") == hash64(b"42")
    assert compute_hash_key(spec, {}, lambda: {}, "") is None


@pytest.mark.parametrize(
    ("ttl", "cookie", "expected"),
    [(900.0, None, True), (0.0, None, True), (None, None, False), (900.0, 1, False)],
)
def test_cookie_generated_only_with_ttl_and_no_cookie(
    ttl: float | None, cookie: int | None, expected: bool
) -> None:
    """A cookie is minted only for a cookie policy with a ttl when the request had none."""
    spec = HashKeySpec(HashKeyKind.COOKIE, "sticky", cookie_ttl=ttl)
    assert should_generate_cookie(spec, cookie) is expected
    assert should_generate_cookie(HashKeySpec(HashKeyKind.HEADER, "x"), None) is False


def test_generated_cookie_matches_envoy_format() -> None:
    """Seed article: ``cookie="<16 hex>"; Max-Age=900; HttpOnly`` for a 900000ms ttl."""
    spec = HashKeySpec(HashKeyKind.COOKIE, "cookie", cookie_ttl=900.0)
    made = generate_cookie(spec, ("198.51.100.4", 50123), ("10.0.0.1", 80))
    assert re.fullmatch(r'cookie="[0-9a-f]{16}"; Max-Age=900; HttpOnly', made.set_cookie.decode())
    assert made.set_cookie.decode() == f'cookie="{made.value}"; Max-Age=900; HttpOnly'


def test_generated_cookie_with_path_and_session_ttl() -> None:
    """Path is added when configured; ttl 0 makes a session cookie (no Max-Age)."""
    spec = HashKeySpec(HashKeyKind.COOKIE, "s", cookie_path="/cart", cookie_ttl=0.0)
    made = generate_cookie(spec, ("::1", 1), ("::1", 2))
    assert made.set_cookie.decode() == f's="{made.value}"; Path=/cart; HttpOnly'


def test_generated_cookie_is_stable_per_connection_and_sticks() -> None:
    """Same connection, same cookie; the next request carrying it hashes to the same key."""
    spec = HashKeySpec(HashKeyKind.COOKIE, "sticky", cookie_ttl=60.0)
    first = generate_cookie(spec, ("198.51.100.4", 50123), ("10.0.0.1", 80))
    again = generate_cookie(spec, ("198.51.100.4", 50123), ("10.0.0.1", 80))
    other = generate_cookie(spec, ("198.51.100.4", 50124), ("10.0.0.1", 80))
    assert first == again
    assert first.value != other.value
    follow_up = {b"cookie": f'sticky="{first.value}"'.encode()}
    assert _key(spec, follow_up) == first.hash_key
