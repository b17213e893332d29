"""Tests for gateway_core/proxy/normalize.py: request-target normalisation before routing."""

from __future__ import annotations

import pytest

from gateway_core.proxy.normalize import BadTarget, normalize_path, split_target


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (b"/a/./b", b"/a/b"),
        (b"/a/../b", b"/b"),
        (b"/../a", b"/a"),
        (b"/a//b", b"/a/b"),
        (b"//", b"/"),
        (b"/a/b/", b"/a/b/"),
        (b"/a/b/..", b"/a/"),
        (b"/a/.", b"/a/"),
        (b"/public/%2e%2e/admin", b"/admin"),
        (b"/a/%2E/b", b"/a/b"),
        (b"/%41%7euser", b"/A~user"),
        (b"/a%2fb", b"/a%2Fb"),
        (b"/a%5cb", b"/a%5Cb"),
        (b"/plain", b"/plain"),
    ],
)
def test_normalize_path(raw: bytes, normalised: bytes) -> None:
    """Unreserved %XX decoded, dot segments removed (RFC 3986 §5.2.4), slashes merged; %2F and
    %5C stay encoded (upper-cased)."""
    assert normalize_path(raw) == normalised


def test_split_target_drops_fragment_and_keeps_query() -> None:
    """The query is split off raw; a fragment is never part of what is routed or sent."""
    assert split_target(b"/a/../b?x=%2e&y#frag") == (b"/b", b"x=%2e&y")
    assert split_target(b"/a#frag?x") == (b"/a", b"")


@pytest.mark.parametrize("target", [b"*", b"http://h/", b"/a b", b"/a\x00", b"/a\x7f"])
def test_split_target_rejects_non_origin_form(target: bytes) -> None:
    """Only origin-form without spaces or control characters is accepted here."""
    with pytest.raises(BadTarget):
        split_target(target)
