"""Control path: pure compile of ``RequestAuthentication`` into the gateway-wide JWT filter.

Which policies apply to this gateway (Istio's rules, for one gateway workload):

* ``selector.matchLabels``: every label must be among the gateway's labels (``--label``); an
  empty or absent selector applies to every workload, so to this gateway;
* ``targetRef``/``targetRefs``: kind ``Gateway`` naming a Gateway resource this process serves
  (its namespace defaults to the policy's); a policy with target references applies only
  through them.

The rules of every applying policy, in configuration order, form one ``JwtAuthnSpec``; no
applying rule means no filter in the chain at all. Inline ``jwks`` are parsed here, once.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway_core.config._base import ApiModel
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.security import JWTRule, PolicyTargetReference, RequestAuthenticationSpec
from gateway_core.security.authn import (
    COOKIE,
    DEFAULT_LOCATIONS,
    HEADER,
    PARAM,
    JwtAuthnSpec,
    JwtRuleSpec,
    TokenLocation,
)
from gateway_core.security.jwks import JwksError, parse_jwks
from gateway_core.security.jwt_token import sanitize_audiences

GATEWAY_KINDS = frozenset({"Gateway"})
DEFAULT_FETCH_TIMEOUT = 5.0


def request_authentications(
    resources: Resources, labels: Mapping[str, str]
) -> list[Resource[RequestAuthenticationSpec]]:
    """The RequestAuthentication resources that apply to this gateway, in file order."""
    served = {(gw.namespace, gw.name) for gw in resources.gateways}
    out: list[Resource[RequestAuthenticationSpec]] = []
    for res in resources.extensions_of("RequestAuthentication"):
        spec = res.spec
        assert isinstance(spec, RequestAuthenticationSpec)
        if applies(spec, res.namespace, labels, served):
            out.append(_typed(res))
    return out


def applies(
    spec: RequestAuthenticationSpec,
    namespace: str,
    labels: Mapping[str, str],
    served: set[tuple[str, str]],
) -> bool:
    refs = [*([spec.target_ref] if spec.target_ref is not None else []), *spec.target_refs]
    if refs:
        return any(names_gateway(ref, namespace, served) for ref in refs)
    wanted = spec.selector.match_labels if spec.selector is not None else {}
    return all(labels.get(k) == v for k, v in wanted.items())


def names_gateway(ref: PolicyTargetReference, namespace: str, served: set[tuple[str, str]]) -> bool:
    return ref.kind in GATEWAY_KINDS and (ref.namespace or namespace, ref.name) in served


def build_jwt_filter(resources: Resources, labels: Mapping[str, str]) -> tuple[object, ...]:
    """The gateway chain's JWT element, or nothing when no rule applies."""
    rules = [
        compile_rule(rule, f"{res.ref} jwtRules[{i}]")
        for res in request_authentications(resources, labels)
        for i, rule in enumerate(res.spec.jwt_rules)
    ]
    return (JwtAuthnSpec(tuple(rules)),) if rules else ()


def compile_rule(rule: JWTRule, source: str) -> JwtRuleSpec:
    """Validation already refused what cannot compile (bad URIs, unusable inline keys)."""
    locations: list[TokenLocation] = [
        TokenLocation(HEADER, h.name.lower(), h.prefix) for h in rule.from_headers
    ]
    locations += [TokenLocation(PARAM, p) for p in rule.from_params]
    locations += [TokenLocation(COOKIE, c) for c in rule.from_cookies]
    inline = None
    if rule.jwks:
        try:
            inline, _ = parse_jwks(rule.jwks)
        except JwksError:  # reported by validation; never reached with a validated config
            inline = None
    return JwtRuleSpec(
        issuer=rule.issuer,
        source=source,
        audiences=sanitize_audiences(rule.audiences),
        locations=tuple(locations) or DEFAULT_LOCATIONS,
        jwks_uri="" if rule.jwks else rule.jwks_uri,
        inline_keys=inline,
        fetch_timeout=rule.timeout or DEFAULT_FETCH_TIMEOUT,
        payload_header=rule.output_payload_to_header.lower().encode("latin-1"),
        claim_headers=tuple(
            (c.header.lower().encode("latin-1"), tuple(c.claim.split(".")))
            for c in rule.output_claim_to_headers
        ),
        forward=rule.forward_original_token,
    )


def _typed(res: Resource[ApiModel]) -> Resource[RequestAuthenticationSpec]:
    assert isinstance(res.spec, RequestAuthenticationSpec)
    return Resource(res.kind, res.api_version, res.meta, res.spec, res.origin)
