"""Data path: route tables, virtual hosts and route entries, matched in Istio/Envoy order.

Virtual host lookup (Envoy): exact domain, then the longest ``*.suffix`` wildcard, then ``*``.
Inside a virtual host the routes are tried in order and the first match wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway_core.routing.actions import (
    Action,
    CorsSpec,
    FaultSpec,
    HeaderOps,
    MirrorSpec,
    RetrySpec,
    RewriteSpec,
    RouteAction,
)
from gateway_core.routing.matchers import RequestMatch
from gateway_core.routing.ratelimit import RateLimitSpec
from gateway_core.routing.request import RequestHead
from gateway_core.security.principal import RequestAuth
from gateway_core.utils.memo import BoundedMemo


@dataclass(frozen=True, slots=True, eq=False)
class RouteEntry:
    name: str
    """``<namespace>/<virtualservice>/http[<i>]`` plus ``.<rule name>`` when the rule has one."""
    vs_ref: str
    rule_index: int
    matches: tuple[RequestMatch, ...]
    action: Action
    request_headers: HeaderOps | None = None
    response_headers: HeaderOps | None = None
    rewrite: RewriteSpec | None = None
    timeout: float | None = None
    retries: RetrySpec | None = None
    fault: FaultSpec | None = None
    mirrors: tuple[MirrorSpec, ...] = ()
    cors: CorsSpec | None = None
    rate_limits: tuple[RateLimitSpec, ...] = ()
    """LocalRateLimits of the route's VirtualService, or of this named route, in file order."""
    filters: tuple[FilterSpec, ...] = field(default=(), init=False)
    """The route's compiled filter chain, in Envoy's HTTP filter order: CORS, local rate
    limits, fault, then the terminal action (router, redirect or direct response). Built with
    the entry (at compile time); the data path runs it (``proxy/filters.py``), never looks at
    the fields again to decide what to do. Filters added later (authentication,
    authorization) take their place before the action without any change to the exchange."""

    def __post_init__(self) -> None:
        chain: list[FilterSpec] = []
        if self.cors is not None:
            chain.append(self.cors)
        chain += self.rate_limits
        if self.fault is not None and isinstance(self.action, RouteAction):
            chain.append(self.fault)  # Istio only injects faults on routed requests
        chain.append(self.action)
        object.__setattr__(self, "filters", tuple(chain))

    def match(
        self, req: RequestHead, auth: RequestAuth | None = None
    ) -> RequestMatch | bool | None:
        """The first matching ``match`` block, ``True`` for a rule without match blocks, or None."""
        if not self.matches:
            return True
        for block in self.matches:
            if block.matches(req, auth):
                return block
        return None


FilterSpec = CorsSpec | RateLimitSpec | FaultSpec | Action
"""One element of a route's filter chain: a filter's compiled settings, or the action."""


@dataclass(frozen=True, slots=True, eq=False)
class VirtualHost:
    name: str
    domains: tuple[str, ...]
    routes: tuple[RouteEntry, ...]

    def route(
        self, req: RequestHead, auth: RequestAuth | None = None
    ) -> tuple[RouteEntry, RequestMatch | None] | None:
        # ``RouteEntry.match`` inlined: this loop runs for every request.
        for entry in self.routes:
            matches = entry.matches
            if not matches:
                return entry, None
            for block in matches:
                if block.matches(req, auth):
                    return entry, block
        return None


@dataclass(frozen=True, slots=True, eq=False)
class RouteTable:
    name: str
    virtual_hosts: tuple[VirtualHost, ...]
    exact: Mapping[str, VirtualHost] = field(default_factory=lambda: MappingProxyType({}))
    suffixes: tuple[tuple[str, VirtualHost], ...] = ()
    catch_all: VirtualHost | None = None
    found: BoundedMemo[str, VirtualHost | None] = field(init=False, repr=False)
    """``find_virtual_host``, remembered: requests repeat a few hosts."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "found", BoundedMemo(self.find_virtual_host))

    @classmethod
    def build(cls, name: str, virtual_hosts: tuple[VirtualHost, ...]) -> RouteTable:
        exact: dict[str, VirtualHost] = {}
        suffixes: list[tuple[str, VirtualHost]] = []
        catch_all: VirtualHost | None = None
        for vh in virtual_hosts:
            for domain in vh.domains:
                domain = domain.lower()
                if domain == "*":
                    catch_all = catch_all or vh
                elif domain.startswith("*"):
                    suffixes.append((domain[1:], vh))
                else:
                    exact.setdefault(domain, vh)
        suffixes.sort(key=lambda item: -len(item[0]))
        return cls(name, virtual_hosts, MappingProxyType(exact), tuple(suffixes), catch_all)

    def find_virtual_host(self, host: str) -> VirtualHost | None:
        vh = self.exact.get(host)
        if vh is not None:
            return vh
        for suffix, candidate in self.suffixes:
            if host.endswith(suffix) and len(host) > len(suffix):
                return candidate
        return self.catch_all

    def route(
        self, req: RequestHead, auth: RequestAuth | None = None
    ) -> (
        tuple[VirtualHost, RouteEntry, RequestMatch | None] | tuple[VirtualHost | None, None, None]
    ):
        vh = self.find_virtual_host(req.host)
        if vh is None:
            return None, None, None
        hit = vh.route(req, auth)
        if hit is None:
            return vh, None, None
        return vh, hit[0], hit[1]

    def route_entry(
        self, req: RequestHead, auth: RequestAuth | None = None
    ) -> tuple[RouteEntry | None, RequestMatch | None]:
        """``route`` without the virtual host, for the data path (``auth``: ``Exchange.auth``)."""
        vh = self.found[req.host]
        hit = vh.route(req, auth) if vh is not None else None
        return (None, None) if hit is None else hit
