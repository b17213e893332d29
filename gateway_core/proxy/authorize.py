"""Data path: the AuthorizationPolicy filter of the gateway-wide chain (Envoy's RBAC filter).

It runs after request authentication (which fills ``Exchange.auth``) and before route
selection. A denial is Envoy's: 403 with the body ``RBAC: access denied``. Envoy has no response
flag for RBAC denials (it says ``rbac_access_denied_matched_policy[...]`` in the response code
details), so none is set; ``gateway_authz_requests`` counts them by policy.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from gateway_core.proxy.interfaces import AnsweringExchange
from gateway_core.security.authz import DENIED_BODY, AccessFacts, AuthorizationFilter

if TYPE_CHECKING:
    from gateway_core.security.principal import RequestAuth


class AuthzTarget(AnsweringExchange, Protocol):
    """What authorization uses of an exchange (``filters.FilterTarget`` includes it)."""

    auth: RequestAuth | None


_log = logging.getLogger("gateway.authz")


def facts_of(ex: AuthzTarget) -> AccessFacts:
    """What the engine may know of this request: its head, its connection, its token."""
    down, req = ex.down, ex.req
    local = down.local_address
    tls = down.tls_facts
    return AccessFacts(
        method=req.method.decode("latin-1"),
        path=req.path.decode("latin-1"),
        host=req.authority.decode("latin-1").lower(),
        headers=req.headers,
        port=local[1],
        source_ip=down.client_ip,
        remote_ip=down.origin_ip(req),
        destination_ip=local[0],
        sni=tls.sni if tls is not None else None,
        peer_principal=tls.peer_principal if tls is not None else None,
        auth=ex.auth,
    )


def authorize(ex: AuthzTarget, spec: Any) -> bool:
    """Decide; True (answered with 403) when the request is denied."""
    assert isinstance(spec, AuthorizationFilter)
    decision = spec.decide(facts_of(ex))
    audited = [name for name, _ in decision.audited]
    ex.down.runtime.metrics.authz.record(
        decision.allowed, decision.policy, decision.unauthenticated, audited
    )
    if decision.audited and _log.isEnabledFor(logging.INFO):
        for name, rule in decision.audited:
            _log.info(
                "AUDIT policy %s rules[%d] matched %s %s",
                name,
                rule,
                ex.req.method.decode("latin-1"),
                ex.req.path.decode("latin-1"),
            )
    if decision.allowed:
        return False
    ex.local_reply(403, None, DENIED_BODY)
    return True
