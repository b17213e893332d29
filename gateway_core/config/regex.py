"""Control path: Istio/Envoy regexes compiled with RE2 (``google-re2``), the engine Envoy runs.

RE2 runs in time linear in the subject, so a pattern such as ``/api/(\\w+)+/x`` cannot freeze
the event loop on a long path the way a backtracking engine does. Patterns are compiled as UTF-8
bytes with RE2's default options, as Envoy's ``safe_regex`` does; subjects are the raw bytes
of paths, header and query values. ``compile_regex`` is the one entry point: validation calls it
to report RE2's own error message, the compiler calls it to build matchers and rewrites.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import re2

_REWRITE_DIGITS = b"0123456789"


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # the message goes into the ValueError, not to stderr
    return options


class Regex:
    """A compiled RE2 pattern; ``fullmatch`` is what matchers use."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str, compiled: Any) -> None:
        self.pattern = pattern
        self._compiled = compiled

    @property
    def groups(self) -> int:
        """How many capturing groups the pattern has."""
        return int(self._compiled.groups)

    def fullmatch(self, subject: bytes) -> bool:
        """Envoy's ``safe_regex`` match: the whole subject, anchored at both ends."""
        return self._compiled.fullmatch(subject) is not None

    def sub(self, replace: Callable[[Any], bytes], subject: bytes) -> bytes:
        """Every non-overlapping match replaced by ``replace(match)``."""
        return bytes(self._compiled.sub(replace, subject))

    def __reduce__(self) -> tuple[Callable[[str], Regex], tuple[str]]:
        """Pickled as its pattern and compiled again, with the options above."""
        return compile_regex, (self.pattern,)


class RegexRewrite:
    """Envoy's ``regex_rewrite``: RE2's ``GlobalReplace`` of every match with an RE2 rewrite
    string, where ``\\0``-``\\9`` name a group (``\\0`` the whole match), ``\\\\`` is a
    backslash and everything else is literal. Built by ``compile_rewrite``."""

    __slots__ = ("_pieces", "regex", "rewrite")

    def __init__(self, regex: Regex, rewrite: str, pieces: tuple[bytes | int, ...]) -> None:
        self.regex = regex
        self.rewrite = rewrite
        self._pieces = pieces

    def _expand(self, match: Any) -> bytes:
        out = bytearray()
        for piece in self._pieces:
            if isinstance(piece, int):
                out += match.group(piece) or b""
            else:
                out += piece
        return bytes(out)

    def apply(self, subject: bytes) -> bytes:
        return self.regex.sub(self._expand, subject)


def compile_regex(pattern: str) -> Regex:
    """Compile ``pattern`` with RE2; a pattern RE2 rejects raises ``ValueError`` with RE2's
    message (for example ``invalid perl operator: (?=``)."""
    try:
        compiled = re2.compile(pattern.encode("utf-8"), _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        message = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
        raise ValueError(message) from None
    return Regex(pattern, compiled)


def compile_rewrite(regex: Regex, rewrite: str) -> RegexRewrite:
    """Parse an RE2 rewrite string for ``regex``; ``ValueError`` with RE2's wording when a
    backslash is followed by neither a digit nor a backslash, or a group does not exist."""
    raw = rewrite.encode("utf-8")
    pieces: list[bytes | int] = []
    literal = bytearray()
    i = 0
    while i < len(raw):
        ch = raw[i : i + 1]
        if ch != b"\\":
            literal += ch
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        if not nxt:
            raise ValueError("Rewrite schema error: '\\' not allowed at end.")
        if nxt == b"\\":
            literal += b"\\"
        elif nxt in _REWRITE_DIGITS:
            group = int(nxt)
            if group > regex.groups:
                raise ValueError(
                    f"Rewrite schema requests {group} matches, but the regexp only has "
                    f"{regex.groups} parenthesized subexpressions."
                )
            if literal:
                pieces.append(bytes(literal))
                literal.clear()
            pieces.append(group)
        else:
            raise ValueError("Rewrite schema error: '\\' must be followed by a digit or '\\'.")
        i += 2
    if literal:
        pieces.append(bytes(literal))
    return RegexRewrite(regex, rewrite, tuple(pieces))
