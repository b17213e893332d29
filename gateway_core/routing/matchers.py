"""Data path: compiled string and request matchers (Istio ``StringMatch``/``HTTPMatchRequest``).

Matchers work on bytes so the data path never decodes headers. Regexes are RE2 full matches, as in
Envoy's ``safe_regex``. ``uri.prefix`` is a raw string prefix (Istio's VirtualService semantics:
``/static`` also matches ``/staticfoo``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway_core.config.regex import Regex, compile_regex
from gateway_core.routing.request import RequestHead
from gateway_core.security.authn import claim_value
from gateway_core.security.principal import RequestAuth


class StringMatcher:
    """Base: ``matches(value)``; ``describe()`` renders it for explain and config dumps.
    Matchers with arguments pickle as the call that builds them (``__reduce__``): mypyc's
    compiled classes cannot be pickled otherwise, and snapshots are pickled to the workers."""

    __slots__ = ()

    def matches(self, value: bytes) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class ExactMatcher(StringMatcher):
    __slots__ = ("ignore_case", "value")

    def __init__(self, value: bytes, ignore_case: bool = False) -> None:
        self.value = value.lower() if ignore_case else value
        self.ignore_case = ignore_case

    def matches(self, value: bytes) -> bool:
        return (value.lower() if self.ignore_case else value) == self.value

    def describe(self) -> str:
        return f"exact:{self.value.decode('latin-1')}"

    def __reduce__(self) -> tuple[type[ExactMatcher], tuple[bytes, bool]]:
        return ExactMatcher, (self.value, self.ignore_case)


class PrefixMatcher(StringMatcher):
    __slots__ = ("ignore_case", "value")

    def __init__(self, value: bytes, ignore_case: bool = False) -> None:
        self.value = value.lower() if ignore_case else value
        self.ignore_case = ignore_case

    def matches(self, value: bytes) -> bool:
        return (value.lower() if self.ignore_case else value).startswith(self.value)

    def describe(self) -> str:
        return f"prefix:{self.value.decode('latin-1')}"

    def __reduce__(self) -> tuple[type[PrefixMatcher], tuple[bytes, bool]]:
        return PrefixMatcher, (self.value, self.ignore_case)


class RegexMatcher(StringMatcher):
    __slots__ = ("pattern",)

    def __init__(self, pattern: str) -> None:
        self.pattern: Regex = compile_regex(pattern)

    def matches(self, value: bytes) -> bool:
        return self.pattern.fullmatch(value)

    def describe(self) -> str:
        return f"regex:{self.pattern.pattern}"

    def __reduce__(self) -> tuple[type[RegexMatcher], tuple[str]]:
        return RegexMatcher, (self.pattern.pattern,)


class PresentMatcher(StringMatcher):
    """``{}`` in a header or query match: the field only has to be present."""

    __slots__ = ()

    def matches(self, value: bytes) -> bool:
        return True

    def describe(self) -> str:
        return "present"


def build_string_matcher(
    exact: str | None, prefix: str | None, regex: str | None, *, ignore_case: bool = False
) -> StringMatcher:
    if exact is not None:
        return ExactMatcher(exact.encode("utf-8"), ignore_case)
    if prefix is not None:
        return PrefixMatcher(prefix.encode("utf-8"), ignore_case)
    if regex is not None and regex != "*":
        return RegexMatcher(regex)
    return PresentMatcher()


FieldMatch = tuple[bytes, StringMatcher]
ClaimMatch = tuple[tuple[str, ...], StringMatcher]
"""``CLAIM_PREFIX`` + ``a.b`` in a ``headers`` match: the claim's path and its matcher."""


def claim_holds(auth: RequestAuth | None, path: tuple[str, ...], matcher: StringMatcher) -> bool:
    """Istio's JWT claim match: a string claim matches as a header would; a list claim matches
    when one of its strings does; no token, a missing claim or another type never matches."""
    if auth is None:
        return False
    value = claim_value(auth.claims, path)
    if value is None:
        return False
    if isinstance(matcher, PresentMatcher):
        return True
    if isinstance(value, str):
        return matcher.matches(value.encode("utf-8"))
    if isinstance(value, list):
        return any(isinstance(v, str) and matcher.matches(v.encode("utf-8")) for v in value)
    return False


@dataclass(frozen=True, slots=True, eq=False)
class RequestMatch:
    """One ``match`` block of an HTTPRoute: every condition set here must hold."""

    name: str | None = None
    uri: StringMatcher | None = None
    scheme: StringMatcher | None = None
    method: StringMatcher | None = None
    authority: StringMatcher | None = None
    port: int | None = None
    headers: tuple[FieldMatch, ...] = ()
    without_headers: tuple[FieldMatch, ...] = ()
    query_params: tuple[FieldMatch, ...] = ()
    claims: tuple[ClaimMatch, ...] = ()
    without_claims: tuple[ClaimMatch, ...] = ()

    def matches(self, req: RequestHead, auth: RequestAuth | None = None) -> bool:
        """``auth``: what request authentication learned (``Exchange.auth``), for claim
        matches."""
        if self.uri is not None and not self.uri.matches(req.path):
            return False
        if self.method is not None and not self.method.matches(req.method):
            return False
        if self.port is not None and self.port != req.port:
            return False
        if self.authority is not None and not self.authority.matches(req.authority):
            return False
        if self.scheme is not None and not self.scheme.matches(req.scheme):
            return False
        headers = req.headers
        for name, matcher in self.headers:
            value = headers.get(name)
            if value is None or not matcher.matches(value):
                return False
        for name, matcher in self.without_headers:
            value = headers.get(name)
            if isinstance(matcher, PresentMatcher):
                if value is not None:
                    return False
            # Istio: treat_missing_header_as_empty for inverted value matches
            elif matcher.matches(value if value is not None else b""):
                return False
        if self.query_params:
            params = req.query_params
            for name, matcher in self.query_params:
                value = params.get(name)
                if value is None or not matcher.matches(value):
                    return False
        if self.claims or self.without_claims:
            for path, matcher in self.claims:
                if not claim_holds(auth, path, matcher):
                    return False
            for path, matcher in self.without_claims:
                if claim_holds(auth, path, matcher):
                    return False
        return True

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for key in ("uri", "scheme", "method", "authority"):
            matcher: StringMatcher | None = getattr(self, key)
            if matcher is not None:
                out[key] = matcher.describe()
        if self.port is not None:
            out["port"] = self.port
        for key in ("headers", "without_headers", "query_params"):
            fields: tuple[FieldMatch, ...] = getattr(self, key)
            if fields:
                out[key] = {n.decode("latin-1"): m.describe() for n, m in fields}
        for key in ("claims", "without_claims"):
            claims: tuple[ClaimMatch, ...] = getattr(self, key)
            if claims:
                out[key] = {".".join(p): m.describe() for p, m in claims}
        return out


MatchFn = Callable[[RequestHead], bool]
