"""Data path: the request attributes AuthorizationPolicy fields and ``when`` keys read.

Each source/operation field and each ``when`` key names a getter over ``AccessFacts`` and the
kind of value it compares (strings with Istio's ``*`` forms, IP/CIDR blocks, or ports). The
validation and the compiler resolve keys here once; the data path only calls the getters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from gateway_core.security.authz import AccessFacts, Attribute, namespace_of


class ValueKind(StrEnum):
    STRING = "string"
    HOST = "host"
    """A string compared ignoring case."""
    IP = "ip"
    PORT = "port"


Getter = Callable[[AccessFacts], Attribute]


@dataclass(frozen=True, slots=True)
class AttributeRef:
    """A resolved field or ``when`` key: how to read it and how to compare it."""

    name: str
    get: Getter
    kind: ValueKind = ValueKind.STRING
    reads_request_auth: bool = False


def _principal(f: AccessFacts) -> Attribute:
    return f.peer_principal


def _namespace(f: AccessFacts) -> Attribute:
    return namespace_of(f.peer_principal)


def _request_principal(f: AccessFacts) -> Attribute:
    return f.auth.principal if f.auth is not None else None


def _audiences(f: AccessFacts) -> Attribute:
    return f.auth.audiences if f.auth is not None else None


def _presenter(f: AccessFacts) -> Attribute:
    return f.auth.presenter or None if f.auth is not None else None


def _source_ip(f: AccessFacts) -> Attribute:
    return f.source_ip or None


def _remote_ip(f: AccessFacts) -> Attribute:
    return f.remote_ip or None


def _destination_ip(f: AccessFacts) -> Attribute:
    return f.destination_ip or None


def _port(f: AccessFacts) -> Attribute:
    return str(f.port)


def _host(f: AccessFacts) -> Attribute:
    return f.host


def _method(f: AccessFacts) -> Attribute:
    return f.method


def _path(f: AccessFacts) -> Attribute:
    return f.path


def _sni(f: AccessFacts) -> Attribute:
    return f.sni or None


SOURCE_FIELDS: dict[str, AttributeRef] = {
    "principals": AttributeRef("source.principal", _principal),
    "request_principals": AttributeRef(
        "request.auth.principal", _request_principal, reads_request_auth=True
    ),
    "namespaces": AttributeRef("source.namespace", _namespace),
    "ip_blocks": AttributeRef("source.ip", _source_ip, ValueKind.IP),
    "remote_ip_blocks": AttributeRef("remote.ip", _remote_ip, ValueKind.IP),
}
"""``from[].source`` fields (snake_case, each with its ``not_`` form) and what they read."""

OPERATION_FIELDS: dict[str, AttributeRef] = {
    "hosts": AttributeRef("request.host", _host, ValueKind.HOST),
    "ports": AttributeRef("destination.port", _port, ValueKind.PORT),
    "methods": AttributeRef("request.method", _method),
    "paths": AttributeRef("request.path", _path),
}
"""``to[].operation`` fields and what they read."""

_SIMPLE_KEYS: dict[str, AttributeRef] = {
    "request.auth.principal": SOURCE_FIELDS["request_principals"],
    "request.auth.audiences": AttributeRef(
        "request.auth.audiences", _audiences, reads_request_auth=True
    ),
    "request.auth.presenter": AttributeRef(
        "request.auth.presenter", _presenter, reads_request_auth=True
    ),
    "source.ip": SOURCE_FIELDS["ip_blocks"],
    "remote.ip": SOURCE_FIELDS["remote_ip_blocks"],
    "source.principal": SOURCE_FIELDS["principals"],
    "source.namespace": SOURCE_FIELDS["namespaces"],
    "destination.ip": AttributeRef("destination.ip", _destination_ip, ValueKind.IP),
    "destination.port": OPERATION_FIELDS["ports"],
    "connection.sni": AttributeRef("connection.sni", _sni),
}

WHEN_KEYS = (*_SIMPLE_KEYS, "request.headers[<name>]", "request.auth.claims[<name>]...")
"""The ``when`` keys this gateway reads (for messages and docs)."""

_HEADER_KEY = re.compile(r"^request\.headers\[([^\[\]]+)\]$")
_CLAIMS_KEY = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")


class HeaderGetter:
    """``request.headers[<name>]``: the header's value (a class, not a closure, so a compiled
    snapshot can be pickled to the workers)."""

    __slots__ = ("name",)

    def __init__(self, name: bytes) -> None:
        self.name = name

    def __call__(self, f: AccessFacts) -> Attribute:
        value = f.headers.get(self.name)
        return value.decode("latin-1") if value is not None else None


class ClaimGetter:
    """``request.auth.claims[<name>][<nested>]...``: a string claim, or the strings of a list."""

    __slots__ = ("path",)

    def __init__(self, path: tuple[str, ...]) -> None:
        self.path = path

    def __call__(self, f: AccessFacts) -> Attribute:
        if f.auth is None:
            return None
        value: object = f.auth.claims
        for part in self.path:
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        if isinstance(value, str):
            return value
        if isinstance(value, list | tuple):
            return tuple(v for v in value if isinstance(v, str))
        return None  # numbers, booleans, objects: Envoy's string matchers never match them


def resolve_when_key(key: str) -> AttributeRef | str:
    """The attribute ``key`` names, or why it is not one this gateway reads."""
    simple = _SIMPLE_KEYS.get(key)
    if simple is not None:
        return simple
    header = _HEADER_KEY.match(key)
    if header is not None:
        name = header.group(1).strip()
        if not name:
            return f"{key}: the header name must not be empty"
        return AttributeRef(key, HeaderGetter(name.lower().encode("latin-1")))
    claims = _CLAIMS_KEY.match(key)
    if claims is not None:
        path = tuple(claims.group(1)[1:-1].split("]["))
        if any(not p for p in path):
            return f"{key}: claim names must not be empty"
        return AttributeRef(key, ClaimGetter(path), reads_request_auth=True)
    if key.startswith("request.headers") or key.startswith("request.auth.claims"):
        return f"{key}: use request.headers[<name>] or request.auth.claims[<name>][<nested>]"
    if key.startswith("experimental.envoy.filters."):
        return f"{key}: experimental Envoy filter metadata keys are not supported"
    return f"unknown attribute {key!r} (supported: {', '.join(WHEN_KEYS)})"
