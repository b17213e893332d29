"""Control path: Istio ``AuthorizationPolicy`` (security.istio.io, authorization.proto).

The structure only; ``validation/authorization.py`` checks the values (CIDRs, ports, ``when``
keys) and ``compiler/authorization.py`` turns the policies that apply to this gateway into the
data path's matchers (``security/authz.py``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gateway_core.config._base import ApiModel


class AuthorizationAction(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class Source(ApiModel):
    """``from[].source``: who sends the request. Fields are ANDed, values within one ORed."""

    principals: list[str] | None = None
    not_principals: list[str] | None = None
    request_principals: list[str] | None = None
    not_request_principals: list[str] | None = None
    namespaces: list[str] | None = None
    not_namespaces: list[str] | None = None
    ip_blocks: list[str] | None = None
    not_ip_blocks: list[str] | None = None
    remote_ip_blocks: list[str] | None = None
    not_remote_ip_blocks: list[str] | None = None


class Operation(ApiModel):
    """``to[].operation``: what the request asks for."""

    hosts: list[str] | None = None
    not_hosts: list[str] | None = None
    ports: list[str] | None = None
    not_ports: list[str] | None = None
    methods: list[str] | None = None
    not_methods: list[str] | None = None
    paths: list[str] | None = None
    not_paths: list[str] | None = None


class RuleFrom(ApiModel):
    source: Source | None = None


class RuleTo(ApiModel):
    operation: Operation | None = None


class Condition(ApiModel):
    """``when[]``: an attribute (``key``) and the values it must (or must not) take."""

    key: str = ""
    values: list[str] | None = None
    not_values: list[str] | None = None


class Rule(ApiModel):
    """One rule: ``from``, ``to`` and ``when`` are ANDed; an empty rule ``{}`` matches all."""

    from_: list[RuleFrom] | None = Field(default=None, alias="from")
    to: list[RuleTo] | None = None
    when: list[Condition] | None = None


class WorkloadSelector(ApiModel):
    match_labels: dict[str, str] = Field(default_factory=dict)


class PolicyTargetReference(ApiModel):
    group: str = ""
    kind: str = ""
    name: str = ""
    namespace: str = ""


class ExtensionProvider(ApiModel):
    name: str = ""


class AuthorizationPolicySpec(ApiModel):
    selector: WorkloadSelector | None = None
    target_ref: PolicyTargetReference | None = None
    target_refs: list[PolicyTargetReference] | None = None
    rules: list[Rule] | None = None
    action: AuthorizationAction = Field(default=AuthorizationAction.ALLOW, strict=False)
    provider: ExtensionProvider | None = None
