"""Data path: the HTTP filter chains (Envoy's HTTP connection manager filters).

Two chains run for each request. The gateway's own (``Snapshot.gateway_filters``) runs first,
before route selection, so that what it learns (an authenticated principal, say) can take part
in matching: ``run_gateway_chain``. Then the route's chain runs: ``run_chain``.

Each route carries its chain, compiled with it (``RouteEntry.filters``): CORS, local rate
limits, fault, then the terminal action. ``run_chain`` walks it for one exchange; each
element's handler either lets the request continue (False) or takes it over (True): it
answered it, holds it (a fault delay, which resumes the chain at the next element with
``continue_chain``), or routed it. The action always takes it over: the router starts the
first attempt, a redirect or direct response answers locally.

The gateway-wide chain starts with the loop guard (``loop_guard.py``), then the gateway-wide
local rate limits (``ratelimit.py``); route rate limits sit in the route's chain.

A new filter is a compiled settings class in ``routing/`` (placed in the chain by
``RouteEntry``) and a handler registered here; the exchange does not change. Response-side
work stays where the response is built: CORS response headers and cookies join the response
fields (``Exchange._response_extra``), header operations are applied by
``messages.response_headers``/``request_head`` (in Envoy, too, route header operations belong to
the router, not to a filter).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from gateway_core.proxy import cors, fault, loop_guard, ratelimit
from gateway_core.proxy.authorize import AuthzTarget, authorize
from gateway_core.proxy.local_reply import route_answer
from gateway_core.routing.actions import (
    CorsSpec,
    DirectResponseAction,
    FaultSpec,
    RedirectAction,
    RouteAction,
)
from gateway_core.routing.loop_guard import LoopGuardSpec
from gateway_core.routing.ratelimit import RateLimitSpec
from gateway_core.security.authn import JwtAuthnSpec, authenticate
from gateway_core.security.authz import AuthorizationFilter

if TYPE_CHECKING:
    from gateway_core.routing.matchers import RequestMatch
    from gateway_core.routing.request import RequestHead
    from gateway_core.routing.route_table import RouteEntry
    from gateway_core.security.principal import RequestAuth


class FilterTarget(fault.FaultTarget, AuthzTarget, Protocol):
    """What the filters use of an exchange (``Exchange`` implements it): the fault filter's
    and authorization's needs, and these."""

    cors_origin: bytes | None
    auth: RequestAuth | None
    hops: bytes

    @property
    def req(self) -> RequestHead: ...
    @property
    def entry(self) -> RouteEntry | None: ...
    @property
    def match(self) -> RequestMatch | None: ...
    def route_to(self, action: RouteAction) -> None: ...


def run_chain(ex: FilterTarget, start: int = 0) -> None:
    """Run the route's chain from element ``start`` until an element takes the request."""
    entry = ex.entry
    assert entry is not None
    chain = entry.filters
    for index in range(start, len(chain)):
        spec = chain[index]
        if _HANDLERS[type(spec)](ex, spec, index):
            return


def run_gateway_chain(ex: FilterTarget, chain: tuple[object, ...]) -> bool:
    """Run the gateway-wide chain; True when an element took the request (it answered it), so
    no route is selected."""
    return any(_GATEWAY_HANDLERS[type(spec)](ex, spec) for spec in chain)


def _cors(ex: FilterTarget, spec: Any, index: int) -> bool:
    """Envoy's CORS filter: remember an allowed origin (its response headers come later);
    answer a preflight from an allowed origin here."""
    assert isinstance(spec, CorsSpec)
    req = ex.req
    origin = ex.cors_origin = cors.allowed_origin(spec, req)
    if origin is not None and cors.is_preflight(req):
        ex.cors_origin = None
        ex.local_reply(200, None, b"", cors.preflight_headers(spec, origin))
        return True
    return False


def _fault(ex: FilterTarget, spec: Any, index: int) -> bool:
    assert isinstance(spec, FaultSpec)
    return fault.inject(ex, spec, index)


def _route(ex: FilterTarget, spec: Any, index: int) -> bool:
    ex.route_to(spec)
    return True


def _answer(ex: FilterTarget, spec: Any, index: int) -> bool:
    """A redirect or direct response: the route answers for itself."""
    req = ex.req
    ex.local_reply(*route_answer(spec, req, ex.match, ex.down.trusts_https(req)))
    return True


def _rate_limit(ex: FilterTarget, spec: Any, index: int) -> bool:
    return _gateway_rate_limit(ex, spec)


def _gateway_rate_limit(ex: FilterTarget, spec: Any) -> bool:
    """Envoy's local rate limit: 429 ``RL`` when the limit's bucket is empty."""
    assert isinstance(spec, RateLimitSpec)
    return ratelimit.check(ex, spec, ex.down.runtime.rate_limits)


def _loop_guard(ex: FilterTarget, spec: Any) -> bool:
    assert isinstance(spec, LoopGuardSpec)
    return loop_guard.guard(ex, spec)


_HANDLERS: dict[type, Callable[[FilterTarget, Any, int], bool]] = {
    CorsSpec: _cors,
    RateLimitSpec: _rate_limit,
    FaultSpec: _fault,
    RouteAction: _route,
    RedirectAction: _answer,
    DirectResponseAction: _answer,
}
"""One handler per kind of chain element."""


def _jwt_authn(ex: FilterTarget, spec: Any) -> bool:
    """Request authentication (``security/authn.py``): sets ``ex.auth`` or answers 401."""
    return authenticate(ex, spec, ex.down.runtime.jwt_keys)


_GATEWAY_HANDLERS: dict[type, Callable[[FilterTarget, Any], bool]] = {
    LoopGuardSpec: _loop_guard,
    JwtAuthnSpec: _jwt_authn,
    AuthorizationFilter: authorize,
    RateLimitSpec: _gateway_rate_limit,
}
"""One handler per kind of gateway-wide element: True when it took the request."""
