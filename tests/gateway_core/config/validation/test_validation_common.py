"""Shared validation primitives: RE2 compatibility, durations, DNS names, labels, localities."""

from __future__ import annotations

import pytest

from gateway_core.config.validation._common import (
    duration_error,
    export_to_errors,
    fqdn_error,
    header_name_error,
    header_value_error,
    labels_errors,
    percentage_error,
    prime,
    regex_error,
    regex_rewrite_error,
    wildcard_domain_error,
)
from gateway_core.config.validation.locality import localities_error


@pytest.mark.parametrize(
    "pattern",
    [
        r"^/api/v[0-9]+$",
        r"(?i)^/aaa$",
        r"^/service/([^/]+)(/.*)$",
        r"(?P<id>\d+)",
        r"[(?=]",
        r"[]?=]",
        r"a+?b*?",
        r"x{2,3}",
        r"\\1",
        r"(?:a|b)",
        r"(?s:.)",
    ],
)
def test_re2_compatible_regexes_pass(pattern: str) -> None:
    """Regexes valid in both RE2 and Python re are accepted."""
    assert regex_error(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "re2_message"),
    [
        ("a(?=b)", "invalid perl operator: (?="),
        ("a(?!b)", "invalid perl operator: (?!"),
        ("(?<=a)b", "invalid perl operator: (?<="),
        ("(?<!a)b", "invalid perl operator: (?<!"),
        (r"(a)\1", "invalid escape sequence: \\1"),
        ("(?P<x>a)(?P=x)", "invalid perl operator: (?P"),
        ("a(?#note)", "invalid perl operator: (?#"),
        ("(?>ab)", "invalid perl operator: (?>"),
        ("a++", "bad repetition operator: ++"),
        ("a{2}+", "bad repetition operator: {2}+"),
        ("(?x) a", "invalid perl operator: (?x"),
        ("[", "missing ]: ["),
        (r"\Z", "invalid escape sequence: \\Z"),
        ("a{1001}", "invalid repetition size: {1001}"),
    ],
)
def test_constructs_re2_rejects_are_errors(pattern: str, re2_message: str) -> None:
    """What RE2 rejects is an error carrying RE2's own message and Istio's RE2 hint."""
    assert regex_error(pattern) == (
        f"invalid regex: {re2_message}; Istio uses RE2 style regex-based match "
        "(https://github.com/google/re2/wiki/Syntax)"
    )


@pytest.mark.parametrize(
    "pattern", [r"[[:^alpha:]]", r"\p{Greek}+", r"\Qa.b\E", "(?U)a+", "/a(?i)b", r"abc\z"]
)
def test_re2_only_constructs_are_accepted(pattern: str) -> None:
    """RE2 syntax that Python's ``re`` lacks is valid: RE2 itself runs the patterns."""
    assert regex_error(pattern) is None


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        (r"/x/\2", "Rewrite schema requests 2 matches, but the regexp only has 1 parenthesized"),
        ("/x\\", "Rewrite schema error: '\\' not allowed at end."),
        (r"/x\n", "Rewrite schema error: '\\' must be followed by a digit or '\\'."),
        (r"/x/\1/\0/\\", None),
    ],
)
def test_regex_rewrite_strings_follow_re2(rewrite: str, message: str | None) -> None:
    """uriRegexRewrite.rewrite is an RE2 rewrite string: \\0-\\9 groups that exist, \\\\."""
    error = regex_rewrite_error("^/a/(.*)$", rewrite)
    if message is None:
        assert error is None
    else:
        assert error is not None and error.startswith(f"invalid rewrite: {message}"), error


def test_regex_length_limit_is_1024() -> None:
    """1024 characters are allowed, 1025 are not."""
    assert regex_error("a" * 1024) is None
    assert regex_error("a" * 1025) == "regex is too large, max length allowed is 1024"


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (0.001, None),
        (0.5, None),
        (3600.0, None),
        (1.001, None),
        (0.0, "duration must be greater than 1ms"),
        (0.0009, "duration must be greater than 1ms"),
        (1.0005, "only durations to ms precision are supported"),
    ],
)
def test_duration_rules(seconds: float, message: str | None) -> None:
    """Durations are at least 1ms and whole milliseconds."""
    assert duration_error(seconds) == message


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("example.com", None),
        ("*.example.com", None),
        ("*", None),
        ("istio.io.", None),
        ("reviews", None),
        ("Example.com", 'domain name "Example.com" invalid (label "Example" invalid)'),
        ("a.*.com", 'domain name "a.*.com" invalid (label "*" invalid)'),
        ("10.0.0.1", 'domain name "10.0.0.1" invalid (top level domain "1" cannot be all-numeric)'),
        ("", "empty domain name not allowed"),
        ("a" * 64 + ".com", f'domain name "{"a" * 64}.com" invalid (label "{"a" * 64}" invalid)'),
    ],
)
def test_wildcard_domain(domain: str, message: str | None) -> None:
    """Istio ValidateWildcardDomain: lower-case DNS-1123 labels, wildcard first label only."""
    assert wildcard_domain_error(domain) == message


def test_fqdn_rejects_wildcards() -> None:
    """A wildcard is not an FQDN (DNS resolution needs concrete names)."""
    assert fqdn_error("*.example.com") == 'domain name "*.example.com" invalid (label "*" invalid)'
    assert fqdn_error("api.example.com") is None


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x-request-id", None),
        (":authority", None),
        ("", "header name cannot be empty"),
        ("X-Request-Id", "header name X-Request-Id must be lowercase"),
        ("bad header", "header name bad header is not a valid header name"),
    ],
)
def test_header_names(name: str, message: str | None) -> None:
    """Match header names are lower-case tokens or HTTP/2 pseudo-headers."""
    assert header_name_error(name) == message


@pytest.mark.parametrize(
    ("value", "ok"),
    [("foo", True), ("%HOSTNAME%", True), ("100%%", True), ("abc%123", False), ("a\nb", False)],
)
def test_header_values(value: str, ok: bool) -> None:
    """Header values may not hold control characters or a dangling '%'."""
    assert (header_value_error(value) is None) is ok


def test_percentage_bounds() -> None:
    """Percent is 0 or within [0.0001, 100]."""
    assert percentage_error(0.0) is None
    assert percentage_error(0.0001) is None
    assert percentage_error(100.0) is None
    assert (
        percentage_error(0.00005) == "percentage 5e-05 is neither 0.0, nor in range [0.0001, 100.0]"
    )


def test_labels() -> None:
    """Label keys are qualified names, values at most 63 label characters."""
    assert labels_errors({"app.kubernetes.io/name": "web", "version": ""}) == []
    assert labels_errors({"-bad": "x", "ok": "bad value"}) == [
        'invalid tag key: "-bad"',
        'invalid tag value: "bad value"',
    ]


def test_export_to() -> None:
    """exportTo: no duplicates, '*' alone, '~' only for ServiceEntries."""
    assert export_to_errors("default", [".", "*"], service_entry=False) == [
        "cannot have both public (*) and non-public exportTo values for a resource"
    ]
    assert export_to_errors("default", ["default", "."], service_entry=False) == [
        "duplicate entries in exportTo: . and current namespace default"
    ]
    assert export_to_errors("default", ["a", "a"], service_entry=False) == [
        "duplicate entries in exportTo for entry a"
    ]
    assert export_to_errors("default", ["~"], service_entry=True) == []


def test_maglev_primes_match_envoy() -> None:
    """Envoy's primality test: 65537 and 5000011 are prime, 65536 and 0 are not."""
    assert [n for n in range(20) if prime(n)] == [1, 2, 3, 5, 7, 11, 13, 17, 19]
    assert prime(65537)
    assert prime(5000011)
    assert not prime(65536)
    assert not prime(0)


@pytest.mark.parametrize(
    ("localities", "message"),
    [
        (["region1/zone1/*", "region1/zone2/*", "region3/zone4/*"], None),
        (["r1/z1/s1", "r1/*"], None),
        (["r1", "r1/z1"], "locality r1/z1 overlap with previous specified ones"),
        (["r1/z1", "r1"], "locality r1 overlap with previous specified ones"),
        (["*", "r1"], "locality r1 overlap with previous specified ones"),
        (
            ["r1/*/z1"],
            "locality r1/*/z1 wildcard '*' number can not exceed 1 and must be in the end",
        ),
        (["r1//s1"], "locality r1//s1 must not contain empty region/zone/subzone info"),
    ],
)
def test_locality_table(localities: list[str], message: str | None) -> None:
    """Locality lists follow Istio's region/zone/subzone overlap table, in list order."""
    assert localities_error(localities) == message


def test_python_only_escapes_are_rejected() -> None:
    """Python-str-only escapes such as \\u are not RE2: RE2's message says so."""
    message = regex_error(r"\u0041")
    assert message is not None
    assert message.startswith("invalid regex: invalid escape sequence: \\u")
