"""Control path: checks of ``RequestAuthentication`` (Istio's admission validation, plus what this
gateway cannot serve).

The pydantic model already refused unknown fields and wrong types; this module checks values:
selectors, target references, issuers, audiences, key sources (``jwksUri`` must be an http(s)
URL, inline ``jwks`` must hold a usable key), token locations and output headers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from gateway_core.config.resources import Resource, Resources
from gateway_core.config.security import JWTRule, PolicyTargetReference, RequestAuthenticationSpec
from gateway_core.config.validation._common import PSEUDO_HEADERS, Reporter, header_name_error
from gateway_core.security.jwks import JwksError, parse_jwks

TARGET_GROUPS = frozenset({"", "gateway.networking.k8s.io", "networking.istio.io"})


def validate_request_authentication(
    res: Resource[RequestAuthenticationSpec], resources: Resources, rep: Reporter
) -> None:
    spec = res.spec
    refs = [("spec.targetRef", spec.target_ref)] if spec.target_ref is not None else []
    refs += [(f"spec.targetRefs[{i}]", ref) for i, ref in enumerate(spec.target_refs)]
    if spec.target_ref is not None and spec.target_refs:
        rep.error("spec", "only one of targetRef or targetRefs can be set")
    if refs and spec.selector is not None:
        rep.error("spec", "only one of targetRefs or workloadSelector can be set")
    if spec.selector is not None:
        for key, value in spec.selector.match_labels.items():
            path = f"spec.selector.matchLabels.{key}"
            if not key:
                rep.error(path, "empty key is not supported in selector")
            if "*" in key or "*" in value:
                rep.error(path, "wildcard is not supported in selector")
    for path, ref in refs:
        _validate_target(ref, path, res.namespace, resources, rep)
    for i, rule in enumerate(spec.jwt_rules):
        validate_jwt_rule(rule, f"spec.jwtRules[{i}]", rep)
    issuers = [r.issuer for r in spec.jwt_rules if r.issuer]
    for issuer in sorted({i for i in issuers if issuers.count(i) > 1}):
        rep.warning(
            "spec.jwtRules",
            f"issuer {issuer} has several rules: a token is verified by the first that reads "
            "the location it was found in",
        )


def _validate_target(
    ref: PolicyTargetReference, path: str, namespace: str, resources: Resources, rep: Reporter
) -> None:
    if ref.kind != "Gateway":
        rep.error(
            f"{path}.kind",
            f"targetRef kind {ref.kind or '(empty)'} is not supported here: a gateway applies "
            "RequestAuthentication through kind Gateway only",
        )
    if ref.group not in TARGET_GROUPS:
        rep.error(f"{path}.group", f"targetRef group {ref.group} is not supported")
    if not ref.name:
        rep.error(f"{path}.name", "targetRef name must be set")
    elif ref.kind == "Gateway" and resources.gateway(ref.namespace or namespace, ref.name) is None:
        rep.warning(
            f"{path}.name",
            f"no Gateway {ref.namespace or namespace}/{ref.name} in this configuration; "
            "the policy has no effect",
        )


def validate_jwt_rule(rule: JWTRule, path: str, rep: Reporter) -> None:
    if not rule.issuer:
        rep.error(f"{path}.issuer", "issuer must be set")
    for i, audience in enumerate(rule.audiences):
        if not audience:
            rep.error(f"{path}.audiences[{i}]", "audience must be non-empty string")
    if rule.jwks_uri:
        rep.error(f"{path}.jwksUri", jwks_uri_error(rule.jwks_uri))
    if rule.jwks:
        try:
            _, notes = parse_jwks(rule.jwks)
        except JwksError as exc:
            rep.error(f"{path}.jwks", f"invalid jwks: {exc}")
        else:
            for note in notes:
                rep.warning(f"{path}.jwks", note)
        if rule.jwks_uri:
            rep.warning(f"{path}.jwksUri", "both jwks and jwksUri are set: jwks is used")
    elif not rule.jwks_uri:
        rep.error(
            path,
            "jwksUri or jwks is required (this gateway does not discover keys from the "
            "issuer's OpenID configuration)",
        )
    for i, header in enumerate(rule.from_headers):
        where = f"{path}.fromHeaders[{i}].name"
        if not header.name:
            rep.error(where, "location header name must be non-empty")
        else:
            rep.error(where, _plain_header_error(header.name))
    for i, param in enumerate(rule.from_params):
        if not param:
            rep.error(f"{path}.fromParams[{i}]", "location query must be non-empty")
    for i, cookie in enumerate(rule.from_cookies):
        if not cookie:
            rep.error(f"{path}.fromCookies[{i}]", "cookie name must be non-empty")
    if rule.output_payload_to_header:
        rep.error(
            f"{path}.outputPayloadToHeader", _plain_header_error(rule.output_payload_to_header)
        )
    for i, claim in enumerate(rule.output_claim_to_headers):
        where = f"{path}.outputClaimToHeaders[{i}]"
        if not claim.header or not claim.claim:
            rep.error(where, "outputClaimToHeaders header and claim value must be non-empty")
            continue
        rep.error(f"{where}.header", _plain_header_error(claim.header))
    if rule.timeout is not None and rule.timeout <= 0:
        rep.error(f"{path}.timeout", "timeout must be greater than 0")


def jwks_uri_error(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        return f"invalid jwksUri {uri!r}: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"invalid jwksUri {uri!r}: the scheme must be http or https"
    if not parts.hostname:
        return f"invalid jwksUri {uri!r}: a host is required"
    if port == 0:
        return f"invalid jwksUri {uri!r}: port 0"
    return None


def _plain_header_error(name: str) -> str | None:
    if name.lower() in PSEUDO_HEADERS:
        return f"header {name} is a pseudo-header"
    return header_name_error(name.lower())
