"""Control path: RE2 patterns (Istio's dialect) translated for Python's ``re``."""

from __future__ import annotations

import re

import pytest

from gateway_core.config.regex import translate_re2


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("[[:alpha:]]+", "abc", True),
        ("[[:alpha:]]+", "ab1", False),
        ("[[:digit:][:upper:]]+", "A1B2", True),
        ("/v[[:digit:]]+/x", "/v12/x", True),
        (r"\pL+", "abc", True),
        (r"\p{N}+", "123", True),
        (r"abc\z", "abc", True),
        ("(?i)^aaa$", "AAA", True),
    ],
)
def test_re2_patterns_mean_the_same_in_python(pattern: str, subject: str, matches: bool) -> None:
    """POSIX classes, \\z and ASCII \\p classes behave as in RE2 after translation."""
    compiled = re.compile(translate_re2(pattern))
    assert (compiled.fullmatch(subject) is not None) is matches


def test_negated_posix_class_is_refused() -> None:
    """A construct with no faithful translation is an error, never a silent mismatch."""
    with pytest.raises(re.error, match="negated POSIX class"):
        translate_re2("[[:^alpha:]]")
