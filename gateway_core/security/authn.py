"""Data path: the request authentication filter (Istio ``RequestAuthentication``, Envoy jwt_authn).

It runs in the gateway-wide chain, before route selection (``proxy/filters.py``), so claims can
take part in route matching. Istio's semantics:

* no token in any configured location: the request goes on without a principal
  (``Exchange.auth is None``); AuthorizationPolicy decides what happens to it;
* a token must be valid for the rule whose issuer it names; a token naming an issuer that no
  rule configures (at the location it was found) is rejected;
* a rejected token is answered 401 with Envoy's message as the body and
  ``www-authenticate: Bearer realm="<url>", error="invalid_token"`` (an audience mismatch is
  403, as Envoy answers it).

Keys: a rule's inline ``jwks`` is parsed at compile time (``JwtRuleSpec.inline_keys``); keys
from ``jwksUri`` come from the process's ``KeySource`` (``security/jwks_store.py``), which the
control path fills and swaps whole. The request path never waits for a fetch: a token whose key
is not known yet is rejected at once and a refresh is requested.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway_core.routing.request import join_headers
from gateway_core.security.jwks import KeySet
from gateway_core.security.jwt_token import (
    JWKS_FETCH_FAILED,
    UNKNOWN_ISSUER,
    JwtFailure,
    ParsedJwt,
    check_claims,
    parse_jwt,
    verify_signature,
)
from gateway_core.security.principal import RequestAuth

if TYPE_CHECKING:
    from gateway_core.proxy.flags import ResponseFlag
    from gateway_core.routing.request import RequestHead

HEADER, PARAM, COOKIE = "header", "param", "cookie"
UNKNOWN_ISSUER_LABEL = "-"
"""The metric label for tokens whose issuer no rule names (labels stay bounded)."""

_JWT_RUN = re.compile(rb"[A-Za-z0-9\-_.=+/]*")
"""The characters a token may be made of (base64url, the dots, and what other encodings use)."""
_HEADER_SAFE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
"""A claim written into a header must not carry control characters (no header injection)."""


Verified = tuple["ParsedJwt", "JwtRuleSpec", KeySet]
"""A verified token: its parse, the rule and the key set that verified it."""


class AuthTarget(Protocol):
    """What the filter uses of an exchange (``Exchange`` implements it)."""

    auth: RequestAuth | None

    @property
    def req(self) -> RequestHead: ...
    def local_reply(
        self,
        status: int,
        flag: ResponseFlag | None,
        body: bytes | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
        *,
        grpc_status: int | None = None,
    ) -> None: ...


class KeySource(Protocol):
    """What the filter needs of the process: keys fetched from ``jwksUri``, the wall clock,
    a way to ask for a refresh, and its counters."""

    def keys(self, uri: str) -> KeySet | None: ...
    def now(self) -> float: ...
    def request_refresh(self, uri: str) -> None: ...
    def record(self, issuer: str, reason: str) -> None:
        """Count one token: ``reason`` is ``""`` for an accepted one."""

    def recall(self, token: str) -> Verified | None:
        """What ``remember`` kept for ``token``, if anything."""

    def remember(self, token: str, verified: Verified) -> None:
        """``token`` verified (a bounded cache, like Envoy's ``jwt_cache_config``); the filter
        still checks the times on every request, and that the rule and the key set are the
        ones in force."""


@dataclass(frozen=True, slots=True)
class TokenLocation:
    """Where a token may be: a header (lower-case name, optional value prefix), a query
    parameter or a cookie."""

    kind: str
    name: str
    prefix: str = ""

    def describe(self) -> str:
        return f"{self.kind}:{self.name}" + (f" prefix {self.prefix!r}" if self.prefix else "")


DEFAULT_LOCATIONS = (
    TokenLocation(HEADER, "authorization", "Bearer "),
    TokenLocation(PARAM, "access_token"),
)
"""Envoy's (and so Istio's) locations when a rule names none."""


@dataclass(frozen=True, slots=True, eq=False)
class JwtRuleSpec:
    """One compiled ``jwtRules`` entry."""

    issuer: str
    source: str
    """``RequestAuthentication/<ns>/<name> jwtRules[<i>]``, for dumps and logs."""
    audiences: frozenset[str] = frozenset()
    """Sanitized as jwt_verify_lib compares them (``jwt_token.sanitize_audiences``)."""
    locations: tuple[TokenLocation, ...] = DEFAULT_LOCATIONS
    jwks_uri: str = ""
    inline_keys: KeySet | None = None
    fetch_timeout: float = 5.0
    payload_header: bytes = b""
    claim_headers: tuple[tuple[bytes, tuple[str, ...]], ...] = ()
    forward: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class JwtAuthnSpec:
    """The gateway-wide filter's settings: every rule of every RequestAuthentication that
    applies to this gateway, in order."""

    rules: tuple[JwtRuleSpec, ...]
    locations: tuple[tuple[TokenLocation, frozenset[str]], ...] = field(init=False)
    """Each distinct location once, with the issuers whose rules read it."""
    output_headers: frozenset[bytes] = field(init=False)
    """Headers the filter writes; a client's own copies are always removed."""

    def __post_init__(self) -> None:
        where: dict[TokenLocation, set[str]] = {}
        outputs: set[bytes] = set()
        for rule in self.rules:
            for loc in rule.locations:
                where.setdefault(loc, set()).add(rule.issuer)
            if rule.payload_header:
                outputs.add(rule.payload_header)
            outputs.update(name for name, _ in rule.claim_headers)
        located = tuple((loc, frozenset(issuers)) for loc, issuers in where.items())
        object.__setattr__(self, "locations", located)
        object.__setattr__(self, "output_headers", frozenset(outputs))

    def describe(self) -> dict[str, Any]:
        return {
            "rules": [
                {
                    "source": r.source,
                    "issuer": r.issuer,
                    "audiences": sorted(r.audiences),
                    "locations": [loc.describe() for loc in r.locations],
                    "jwks_uri": r.jwks_uri or None,
                    "inline_keys": r.inline_keys.describe() if r.inline_keys else None,
                    "output_payload_to_header": r.payload_header.decode() or None,
                    "output_claim_to_headers": {
                        h.decode(): ".".join(path) for h, path in r.claim_headers
                    },
                    "forward_original_token": r.forward,
                }
                for r in self.rules
            ]
        }

    def rule_for(self, issuer: str, location: TokenLocation) -> JwtRuleSpec | None:
        for rule in self.rules:
            if rule.issuer == issuer and location in rule.locations:
                return rule
        return None


@dataclass(slots=True)
class _Found:
    token: str
    location: TokenLocation
    issuers: frozenset[str]


def authenticate(ex: AuthTarget, spec: JwtAuthnSpec, source: KeySource) -> bool:
    """The gateway-chain handler: True when it answered the request (a rejected token)."""
    req = ex.req
    found = _extract(req.headers, req.query_params if req.query else {}, spec)
    if not found:
        if spec.output_headers and not spec.output_headers.isdisjoint(req.headers):
            _rewrite_headers(ex, spec.output_headers, [])
        return False
    now = source.now()
    verified: list[tuple[_Found, ParsedJwt, JwtRuleSpec]] = []
    for item in found:
        label = UNKNOWN_ISSUER_LABEL
        try:
            hit = source.recall(item.token)
            if hit is not None and _still_valid(hit, item, spec, source):
                jwt, rule, _ = hit
                label = rule.issuer
                check_claims(jwt, now, rule.audiences)
            else:
                jwt = parse_jwt(item.token)
                found_rule = spec.rule_for(jwt.issuer, item.location)
                if found_rule is None:
                    raise JwtFailure(UNKNOWN_ISSUER, "unknown_issuer")
                rule = found_rule
                label = rule.issuer
                check_claims(jwt, now, rule.audiences)
                keys = _verify(jwt, rule, source)
                source.remember(item.token, (jwt, rule, keys))
        except JwtFailure as failure:
            source.record(label, failure.reason)
            _reject(ex, failure)
            return True
        source.record(label, "")
        verified.append((item, jwt, rule))
    _accept(ex, spec, verified)
    return False


def _keys(rule: JwtRuleSpec, source: KeySource) -> KeySet | None:
    return rule.inline_keys if rule.inline_keys is not None else source.keys(rule.jwks_uri)


def _still_valid(hit: Verified, item: _Found, spec: JwtAuthnSpec, source: KeySource) -> bool:
    """A remembered verification counts only under the same rule (a reload builds new ones)
    and the same key set (a refresh publishes a new one)."""
    jwt, rule, keys = hit
    return spec.rule_for(jwt.issuer, item.location) is rule and _keys(rule, source) is keys


def _verify(jwt: ParsedJwt, rule: JwtRuleSpec, source: KeySource) -> KeySet:
    """The signature check; the key set that verified it."""
    keys = _keys(rule, source)
    if keys is None:  # never fetched successfully (yet)
        source.request_refresh(rule.jwks_uri)
        raise JwtFailure(JWKS_FETCH_FAILED, "jwks_unavailable")
    try:
        verify_signature(jwt, keys)
    except JwtFailure as failure:
        if failure.reason == "unknown_kid" and rule.inline_keys is None:
            source.request_refresh(rule.jwks_uri)  # a key rotation: look again, rate-limited
        raise
    return keys


def _reject(ex: AuthTarget, failure: JwtFailure) -> None:
    req = ex.req
    realm = (req.scheme + b"://" + req.authority + req.target).replace(b'"', b"%22")
    status = 403 if failure.reason == "audience" else 401
    header = b'Bearer realm="' + realm + b'", error="invalid_token"'
    ex.local_reply(
        status,
        None,  # Envoy's jwt_authn sets no response flag
        str(failure).encode(),
        [(b"www-authenticate", header)],
    )


def _accept(
    ex: AuthTarget, spec: JwtAuthnSpec, verified: list[tuple[_Found, ParsedJwt, JwtRuleSpec]]
) -> None:
    remove = set(spec.output_headers)
    add: list[tuple[bytes, bytes]] = []
    for item, jwt, rule in verified:
        if not rule.forward and item.location.kind == HEADER:
            remove.add(item.location.name.encode("latin-1"))
        if rule.payload_header:
            add.append((rule.payload_header, jwt.payload_segment.encode("ascii")))
        for header, path in rule.claim_headers:
            value = claim_text(claim_value(jwt.payload, path))
            if value is not None and _HEADER_SAFE.fullmatch(value):
                add.append((header, value.encode("utf-8")))
    if add or not remove.isdisjoint(ex.req.headers):
        _rewrite_headers(ex, remove, add)
    _, first, _ = verified[0]
    payload = first.payload
    aud = payload.get("aud")
    sub, azp = payload.get("sub", ""), payload.get("azp", "")
    ex.auth = RequestAuth(
        issuer=first.issuer,
        subject=sub if isinstance(sub, str) else "",
        claims=payload,
        audiences=(aud,) if isinstance(aud, str) else tuple(aud or ()),
        presenter=azp if isinstance(azp, str) else "",
    )


def _rewrite_headers(
    ex: AuthTarget, remove: set[bytes] | frozenset[bytes], add: list[tuple[bytes, bytes]]
) -> None:
    req = ex.req
    raw = [(n, v) for n, v in req.raw_headers if n not in remove] + add
    req.raw_headers = raw
    req.headers = join_headers(raw)


def _extract(
    headers: Mapping[bytes, bytes], params: Mapping[bytes, bytes], spec: JwtAuthnSpec
) -> list[_Found]:
    out: list[_Found] = []
    seen: set[str] = set()
    for loc, issuers in spec.locations:
        token = _token_at(loc, headers, params)
        if token and token not in seen:
            seen.add(token)
            out.append(_Found(token, loc, issuers))
    return out


def _token_at(
    loc: TokenLocation, headers: Mapping[bytes, bytes], params: Mapping[bytes, bytes]
) -> str | None:
    if loc.kind == HEADER:
        value = headers.get(loc.name.encode("latin-1"))
        if value is None:
            return None
        if not loc.prefix:
            return value.strip().decode("latin-1") or None
        # Envoy: find the prefix anywhere in the value, the token runs to the first character
        # that cannot be part of a JWT. Bearer schemes are case-insensitive (RFC 6750).
        at = value.lower().find(loc.prefix.lower().encode("latin-1"))
        if at < 0:
            return None
        run = _JWT_RUN.match(value, at + len(loc.prefix))
        return run.group().decode("ascii") or None if run is not None else None
    if loc.kind == PARAM:
        param = params.get(loc.name.encode("utf-8"))
        return param.decode("latin-1") if param else None
    cookies = headers.get(b"cookie")
    if cookies is None:
        return None
    wanted = loc.name.encode("latin-1")
    for part in cookies.replace(b",", b";").split(b";"):
        name, eq, value = part.strip().partition(b"=")
        if eq and name == wanted and value:
            return value.strip(b'"').decode("latin-1")
    return None


def claim_value(claims: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The claim at ``path`` (nested objects, Istio's ``a.b`` names), or None."""
    value: Any = claims
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def claim_text(value: Any) -> str | None:
    """A claim as a header value, as Envoy's ``claim_to_headers`` writes it: strings, integers
    and booleans; other types (and strings with control characters) are not written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    return None
