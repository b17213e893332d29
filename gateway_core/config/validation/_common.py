"""Control path: shared building blocks of semantic validation.

Each check returns an error message (or None) worded like Istio's own validation
(``pkg/config/validation``); the per-kind modules attach field paths and severities through a
``Reporter``. Host names follow Istio's DNS-1123 rules, which are stricter than the loose
matching helpers in ``config.hosts``: labels are lower case and a top-level domain may not be
all digits.
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway_core.config.diagnostics import Diagnostics, Origin
from gateway_core.config.regex import compile_regex, compile_rewrite

RE2_SYNTAX_HINT = (
    "Istio uses RE2 style regex-based match (https://github.com/google/re2/wiki/Syntax)"
)
MAX_REGEX_LENGTH = 1024
UNIX_PREFIX = "unix://"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_WILDCARD_LABEL = re.compile(r"^(\*|(\*|\*-)?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$")
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
PSEUDO_HEADERS = frozenset({":method", ":scheme", ":authority", ":path", ":status"})


@dataclass(frozen=True, slots=True)
class Reporter:
    """Appends diagnostics for one resource: every message carries its origin, ref and path."""

    diags: Diagnostics
    origin: Origin
    ref: str

    def error(self, path: str, message: str | None) -> None:
        if message is not None:
            self.diags.error(message, origin=self.origin, ref=self.ref, path=path)

    def warning(self, path: str, message: str | None) -> None:
        if message is not None:
            self.diags.warning(message, origin=self.origin, ref=self.ref, path=path)


def quote(text: str) -> str:
    """Render like Go's ``%q`` so messages read as Istio's do."""
    return json.dumps(text, ensure_ascii=False)


def go_list(items: Iterable[object]) -> str:
    """Render like Go's ``%v`` of a slice: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def is_dns1123_label(text: str) -> bool:
    return len(text) <= 63 and _DNS1123_LABEL.match(text) is not None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _domain_precondition_error(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {quote(name)} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _dns1123_labels_error(labels: str, domain: str) -> str | None:
    """Check the dot-separated ``labels``; messages name the whole ``domain``."""
    parts = labels.split(".")
    top = parts[-1]
    if top.isdigit():
        return (
            f"domain name {quote(domain)} invalid "
            f"(top level domain {quote(top)} cannot be all-numeric)"
        )
    for i, label in enumerate(parts):
        if i == len(parts) - 1 and label == "":
            return None
        if not is_dns1123_label(label):
            return f"domain name {quote(domain)} invalid (label {quote(label)} invalid)"
    return None


def fqdn_error(name: str) -> str | None:
    """Istio ``ValidateFQDN``: a DNS name without wildcards (single labels are allowed)."""
    return _domain_precondition_error(name) or _dns1123_labels_error(name, name)


def wildcard_domain_error(domain: str) -> str | None:
    """Istio ``ValidateWildcardDomain``: like an FQDN, but the first label may be a wildcard."""
    error = _domain_precondition_error(domain)
    if error:
        return error
    first, dot, rest = domain.partition(".")
    if len(first) > 63 or not _WILDCARD_LABEL.match(first):
        return f"domain name {quote(domain)} invalid (label {quote(first)} invalid)"
    return _dns1123_labels_error(rest, domain) if dot else None


def partial_wildcard_error(host: str) -> str | None:
    if "*" in host and host != "*" and not host.startswith("*."):
        return f"partial wildcard {quote(host)} not allowed"
    return None


def ip_subnet_error(subnet: str) -> str | None:
    """Istio ``ValidateIPSubnet``: an address or, with exactly one '/', a CIDR block."""
    if subnet.count("/") == 1:
        try:
            ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            return f"{subnet} is not a valid CIDR block"
        return None
    return None if is_ip(subnet) else f"{subnet} is not a valid IP"


def unix_address_error(path: str) -> str | None:
    if not path:
        return "unix address must not be empty"
    if path.startswith("@"):
        return None
    if not posixpath.isabs(path) or path.endswith("/"):
        return f"{path} is not an absolute path to a file"
    return None


def port_error(number: int) -> str | None:
    if 1 <= number <= 65535:
        return None
    return f"port number {number} must be in the range 1..65535"


def duration_error(seconds: float) -> str | None:
    """Istio ``agent.ValidateDuration``: at least 1ms, whole milliseconds."""
    if seconds < 0.001 - 1e-12:
        return "duration must be greater than 1ms"
    millis = seconds * 1000.0
    if abs(millis - round(millis)) > 1e-6:
        return "only durations to ms precision are supported"
    return None


def format_seconds(seconds: float) -> str:
    return f"{seconds:g}s"


def percentage_error(value: float) -> str | None:
    """Istio ``validatePercentage`` for ``Percent`` messages."""
    if value < 0.0 or value > 100.0 or 0.0 < value < 0.0001:
        return f"percentage {value:g} is neither 0.0, nor in range [0.0001, 100.0]"
    return None


def int_percent_error(value: int) -> str | None:
    if value < 0 or value > 100:
        return f"percentage {value} is not in range 0..100"
    return None


def regex_error(pattern: str) -> str | None:
    """A regex Istio would accept: at most 1024 characters, and one RE2 compiles (the error is
    RE2's own message, as Istio reports Go's ``regexp`` message)."""
    if len(pattern) > MAX_REGEX_LENGTH:
        return f"regex is too large, max length allowed is {MAX_REGEX_LENGTH}"
    try:
        compile_regex(pattern)
    except ValueError as exc:
        return f"invalid regex: {exc}; {RE2_SYNTAX_HINT}"
    return None


def regex_rewrite_error(pattern: str, rewrite: str) -> str | None:
    """An RE2 rewrite string that RE2 can apply for ``pattern`` (``\\N`` groups that exist,
    no other backslash escape than ``\\\\``); None when ``pattern`` itself is invalid."""
    try:
        compile_rewrite(compile_regex(pattern), rewrite)
    except ValueError as exc:
        return f"invalid rewrite: {exc}"
    return None


def header_name_error(name: str) -> str | None:
    """Header names in matches: RFC 7230 tokens or HTTP/2 pseudo-headers, lower case."""
    if not name:
        return "header name cannot be empty"
    if name in PSEUDO_HEADERS:
        return None
    if not _HEADER_TOKEN.match(name):
        return f"header name {name} is not a valid header name"
    if name != name.lower():
        return f"header name {name} must be lowercase"
    return None


def header_underscore_warning(name: str) -> str | None:
    """The data path drops request headers with ``_`` (nginx, Envoy's edge advice), so a match on
    one can never hold."""
    if "_" in name:
        return (
            f"header {name} contains '_': the gateway drops such request headers, "
            "so this match never holds"
        )
    return None


def cors_header_name_error(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if name == "*" or _HEADER_TOKEN.match(name):
        return None
    return f"header name {name} is not a valid header name"


def header_value_error(value: str) -> str | None:
    """Control characters are invalid; a '%' must start ``%%`` or a closed ``%VARIABLE%``."""
    if _HEADER_VALUE_FORBIDDEN.search(value):
        return f"header value configuration {value} is invalid"
    i = 0
    while i < len(value):
        if value[i] != "%":
            i += 1
            continue
        if value[i + 1 : i + 2] == "%":
            i += 2
            continue
        end = value.find("%", i + 1)
        if end < 0:
            return (
                "header value configuration: invalid header configuration. "
                "Un-terminated variable expression"
            )
        i = end + 1
    return None


def labels_errors(labels: Mapping[str, str]) -> list[str]:
    """Kubernetes label syntax (Istio ``labels.Instance.Validate``)."""
    out: list[str] = []
    for key, value in labels.items():
        if not _qualified_name_ok(key):
            out.append(f"invalid tag key: {quote(key)}")
        if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
            out.append(f"invalid tag value: {quote(value)}")
    return out


def _qualified_name_ok(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and _LABEL_NAME.match(name) is not None


def export_to_errors(namespace: str, export_to: list[str], *, service_entry: bool) -> list[str]:
    """Istio ``validateExportTo``: '.', '*', a namespace, or '~' (ServiceEntry only)."""
    out: list[str] = []
    seen: set[str] = set()
    for entry in export_to:
        key = namespace if entry == "." else entry
        if key in seen:
            out.append(
                f"duplicate entries in exportTo: . and current namespace {namespace}"
                if key != entry
                else f"duplicate entries in exportTo for entry {entry}"
            )
            continue
        if (entry == "~" and service_entry) or key in ("*", namespace) or is_dns1123_label(key):
            seen.add(key)
        else:
            out.append(f"only .,*, or a valid DNS 1123 label is allowed as exportTo entry: {entry}")
    if "*" in seen and len(export_to) > 1:
        out.append("cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(export_to) > 1:
        out.append("cannot export service entry to no one (~) and someone")
    return out


def prime(number: int) -> bool:
    """Envoy's primality test for Maglev table sizes (0 is not prime, 1 counts as prime)."""
    if 0 < number < 4:
        return True
    if number % 2 == 0:
        return False
    factor = 3
    while factor * factor <= number:
        if number % factor == 0:
            return False
        factor += 2
    return True


def validate_gateway_names(names: list[str], path: str, rep: Reporter) -> None:
    """Istio ``validateGatewayNames``: ``ns/name``, a bare name, or the legacy ``name.ns`` form."""
    for i, name in enumerate(names):
        entry = f"{path}[{i}]"
        namespace, slash, gateway = name.partition("/")
        if not slash:
            if "." in name:
                parts = name.split(".")
                rep.warning(
                    entry,
                    f"using legacy gatewayName format {quote(name)}; prefer the "
                    f"<namespace>/<name> format: {quote(parts[1] + '/' + parts[0])}",
                )
            rep.error(entry, fqdn_error(name))
            continue
        if not namespace or not gateway:
            rep.error(entry, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(namespace):
            rep.error(entry, f"invalid value for namespace: {quote(namespace)}")
        if not is_dns1123_label(gateway):
            rep.error(entry, f"invalid value for gateway name: {quote(gateway)}")
