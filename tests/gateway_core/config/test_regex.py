"""Tests for gateway_core/config/regex.py: RE2 patterns, linear-time matching, RE2 rewrites."""

from __future__ import annotations

import re
import time

import pytest

from gateway_core.config.regex import compile_regex, compile_rewrite

# A pattern RE2 accepts that makes a backtracking engine take exponential time when it fails.
BACKTRACKING = r"/api/(\w+)+/x"


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("[[:alpha:]]+", "abc", True),
        ("[[:alpha:]]+", "ab1", False),
        ("[[:^alpha:]]+", "12", True),
        ("[[:digit:][:upper:]]+", "A1B2", True),
        (r"\pL+", "abc", True),
        (r"\pL+", "héllo", True),
        (r"\p{Greek}+", "αβγ", True),
        (r"\p{N}+", "123", True),
        (r"\d+", "١٢", False),  # \d is ASCII in RE2
        (r"abc\z", "abc", True),
        (r"\Qa.b\E", "a.b", True),
        (r"\Qa.b\E", "axb", False),
        ("(?i)^aaa$", "AAA", True),
        ("/a(?i)b", "/aB", True),
        ("(?U)a+", "aaa", True),
        ("/v[0-9]+/items", "/v12/items/1", False),  # a full match, never a prefix
    ],
)
def test_patterns_run_with_re2_semantics(pattern: str, subject: str, matches: bool) -> None:
    """RE2 syntax Python's ``re`` lacks (negated POSIX classes, Unicode scripts, \\Q..\\E,
    mid-pattern flags, (?U)) runs as RE2 runs it; matches are full matches."""
    assert compile_regex(pattern).fullmatch(subject.encode()) is matches


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("a(?=b)", "invalid perl operator: (?="), (r"(a)\1", "invalid escape sequence: \\1")],
)
def test_rejected_patterns_raise_value_error_with_re2_message(pattern: str, message: str) -> None:
    """A pattern RE2 rejects raises ValueError carrying RE2's own message."""
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        compile_regex(pattern)


def test_backtracking_pattern_is_linear_on_a_16_kib_path() -> None:
    """``/api/(\\w+)+/x`` on a 16 KiB path that almost matches: a backtracking engine takes
    longer than the age of the universe (0.6 s at 30 bytes, doubling per byte); RE2 answers in
    well under a second."""
    regex = compile_regex(BACKTRACKING)
    path = b"/api/" + b"a" * (16 * 1024 - len(b"/api//y")) + b"/y"
    assert len(path) == 16 * 1024
    start = time.perf_counter()
    assert regex.fullmatch(path) is False
    assert regex.fullmatch(path[:-1] + b"x") is True
    elapsed = time.perf_counter() - start
    assert elapsed < 0.25, elapsed


def test_rewrite_replaces_every_match_with_re2_groups() -> None:
    """RE2 rewrite strings as Envoy applies them: \\1-\\9 groups, \\0 the whole match, \\\\ a
    backslash, every match replaced (GlobalReplace)."""
    swap = compile_rewrite(compile_regex(r"^/service/([^/]+)(/.*)$"), r"/customprefix\2/\1")
    assert swap.apply(b"/service/update/v1/api") == b"/customprefix/v1/api/update"
    every = compile_rewrite(compile_regex("o"), r"[\0]")
    assert every.apply(b"/foo/bo") == b"/f[o][o]/b[o]"
    literal = compile_rewrite(compile_regex("^/a"), r"/b\\1")
    assert literal.apply(b"/a/c") == b"/b\\1/c"
    assert swap.apply(b"/other") == b"/other"


@pytest.mark.parametrize("rewrite", [r"/\2", "/x\\", r"/\n"])
def test_rewrite_strings_re2_cannot_apply_are_refused(rewrite: str) -> None:
    """A group the pattern lacks, a trailing backslash or an unknown escape: ValueError."""
    with pytest.raises(ValueError, match="Rewrite schema"):
        compile_rewrite(compile_regex("^/(a)"), rewrite)


def test_bytes_that_are_not_utf8_match_no_dot() -> None:
    """RE2 runs in UTF-8 mode, as in Envoy: an invalid byte matches neither ``.`` nor a class."""
    assert compile_regex("/.*").fullmatch(b"/\xff") is False
    assert compile_regex("/[^/]+").fullmatch(b"/\xff") is False
    assert compile_regex("/.*").fullmatch("/é".encode()) is True
