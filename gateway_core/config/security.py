"""Control path: Istio's ``security.istio.io`` kinds this gateway reads (``RequestAuthentication``).

The shapes follow Istio's API (``security/v1/request_authentication.proto``): a workload
``selector`` or a ``targetRef``/``targetRefs``, and ``jwtRules``. Structure and types are enforced
here (unknown fields are rejected with the usual diagnostics); values that only make sense
together are checked in ``config/validation/request_authentication.py``.
"""

from __future__ import annotations

from pydantic import Field

from gateway_core.config._base import ApiModel, Duration

CLAIM_PREFIX = "@request.auth.claims."
"""A VirtualService ``headers``/``withoutHeaders`` key with this prefix matches a JWT claim."""

SECURITY_GROUP = "security.istio.io"
SECURITY_VERSIONS = ("v1", "v1beta1")


class WorkloadSelector(ApiModel):
    """``selector``: the policy applies to a gateway whose labels (``--label``) include these."""

    match_labels: dict[str, str] = Field(default_factory=dict)


class PolicyTargetReference(ApiModel):
    """``targetRef``: here, the name of a Gateway this process serves."""

    group: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""


class JWTHeader(ApiModel):
    """``fromHeaders[]``: a header carrying the token, after an optional ``prefix``."""

    name: str = ""
    prefix: str = ""


class ClaimToHeader(ApiModel):
    """``outputClaimToHeaders[]``: copy one claim of a verified token into a request header."""

    header: str = ""
    claim: str = ""


class JWTRule(ApiModel):
    """One issuer's rule (Istio ``JWTRule``)."""

    issuer: str = ""
    audiences: list[str] = Field(default_factory=list)
    jwks_uri: str = ""
    jwks: str = ""
    from_headers: list[JWTHeader] = Field(default_factory=list)
    from_params: list[str] = Field(default_factory=list)
    from_cookies: list[str] = Field(default_factory=list)
    output_payload_to_header: str = ""
    output_claim_to_headers: list[ClaimToHeader] = Field(default_factory=list)
    forward_original_token: bool = False
    timeout: Duration | None = None
    """How long one fetch of ``jwksUri`` may take (Istio's default: 5 s)."""


class RequestAuthenticationSpec(ApiModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    jwt_rules: list[JWTRule] = Field(default_factory=list)


SECURITY_KINDS: dict[str, type[ApiModel]] = {"RequestAuthentication": RequestAuthenticationSpec}
