"""Control path: RE2 (Istio/Envoy regex syntax) → Python ``re``, for the parts that differ.

Python's ``re`` accepts most RE2 patterns unchanged. What it reads differently is translated:
POSIX classes inside brackets (``[[:alpha:]]``), ``\\z`` (end of text, Python ``\\Z``) and
Unicode classes ``\\pN``/``\\p{...}`` for the ASCII subset that HTTP paths and headers use.
Constructs RE2 rejects (lookaround, backreferences) are rejected by validation instead.
"""

from __future__ import annotations

import re

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_POSIX_RE = re.compile(r"\[:(\^?)([a-z]+):\]")
_UNICODE = {"L": "A-Za-z", "Lu": "A-Z", "Ll": "a-z", "N": "0-9", "Nd": "0-9"}
_UNICODE_RE = re.compile(r"\\p\{(\w+)\}|\\p(\w)")


def translate_re2(pattern: str) -> str:
    """The Python pattern that matches what ``pattern`` matches in RE2 (ASCII subject)."""

    def posix(m: re.Match[str]) -> str:
        body = _POSIX.get(m.group(2))
        if body is None:
            return m.group(0)
        if m.group(1):
            raise re.error(f"negated POSIX class [:^{m.group(2)}:] is not supported")
        return body

    def unicode_class(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        body = _UNICODE.get(name)
        if body is None:
            raise re.error(f"Unicode class \\p{{{name}}} is not supported")
        return f"[{body}]"

    out = _POSIX_RE.sub(posix, pattern)
    out = _UNICODE_RE.sub(unicode_class, out)
    return out.replace("\\z", "\\Z")
