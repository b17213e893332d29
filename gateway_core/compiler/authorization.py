"""Control path: AuthorizationPolicies that apply to this gateway → the data path's engine.

A policy applies when its ``selector.matchLabels`` are all among the gateway's labels
(``--label``), or a ``targetRef``/``targetRefs`` entry names a ``Gateway`` this configuration
serves, or it has neither (then it applies to every workload of its namespace; this gateway has
no namespace of its own, so it applies). Matchers are built here once: value lists split into
exact/prefix/suffix/presence sets, CIDRs parsed, ``when`` keys resolved to getters.
"""

from __future__ import annotations

from pydantic import BaseModel

from gateway_core.config.authorization import (
    AuthorizationAction,
    AuthorizationPolicySpec,
    Condition,
    PolicyTargetReference,
    Rule,
)
from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.resources import Resource, Resources
from gateway_core.security.attributes import (
    OPERATION_FIELDS,
    SOURCE_FIELDS,
    AttributeRef,
    ValueKind,
    resolve_when_key,
)
from gateway_core.security.authz import (
    AuthorizationFilter,
    Check,
    Cidrs,
    Clause,
    CompiledPolicy,
    CompiledRule,
    Matcher,
    Strings,
)
from gateway_core.snapshot import NodeInfo

GATEWAY_GROUPS = ("", "gateway.networking.k8s.io", "networking.istio.io")
"""``targetRef.group`` values that name a Gateway (Istio's own Gateway kind included)."""


def build_authorization(
    resources: Resources, node: NodeInfo, diags: Diagnostics
) -> tuple[AuthorizationFilter, ...]:
    """The authorization filter for the gateway-wide chain, or nothing when no policy
    applies."""
    policies = [
        compile_policy(res)
        for res in resources.authorization_policies
        if res.spec.action is not AuthorizationAction.CUSTOM
        and applies(res, resources, node, diags)
    ]
    if not policies:
        return ()
    return (
        AuthorizationFilter(
            deny=tuple(p for p in policies if p.action == AuthorizationAction.DENY),
            allow=tuple(p for p in policies if p.action == AuthorizationAction.ALLOW),
            audit=tuple(p for p in policies if p.action == AuthorizationAction.AUDIT),
        ),
    )


def applies(
    res: Resource[AuthorizationPolicySpec], resources: Resources, node: NodeInfo, diags: Diagnostics
) -> bool:
    spec = res.spec
    if spec.selector is not None:
        return all(node.labels.get(k) == v for k, v in spec.selector.match_labels.items())
    refs = [spec.target_ref] if spec.target_ref is not None else list(spec.target_refs or ())
    if not refs:
        return True
    if any(_names_served_gateway(ref, res.namespace, resources) for ref in refs):
        return True
    diags.warning(
        "no targetRef names a Gateway this configuration serves: the policy does not apply "
        "to this gateway",
        origin=res.origin,
        ref=res.ref,
        path="spec.targetRef" if spec.target_ref is not None else "spec.targetRefs",
    )
    return False


def _names_served_gateway(ref: PolicyTargetReference, namespace: str, resources: Resources) -> bool:
    if ref.kind != "Gateway" or ref.group not in GATEWAY_GROUPS:
        return False
    return resources.gateway(ref.namespace or namespace, ref.name) is not None


def compile_policy(res: Resource[AuthorizationPolicySpec]) -> CompiledPolicy:
    uses_auth: list[bool] = []
    rules = tuple(_rule(i, rule, uses_auth) for i, rule in enumerate(res.spec.rules or ()))
    return CompiledPolicy(
        name=f"{res.namespace}/{res.name}",
        action=res.spec.action.value,
        rules=rules,
        uses_request_auth=any(uses_auth),
    )


def _rule(index: int, rule: Rule, uses_auth: list[bool]) -> CompiledRule:
    sources = operations = None
    if rule.from_:
        sources = tuple(
            _clause(e.source, SOURCE_FIELDS, uses_auth) for e in rule.from_ if e.source is not None
        )
    if rule.to:
        operations = tuple(
            _clause(e.operation, OPERATION_FIELDS, uses_auth)
            for e in rule.to
            if e.operation is not None
        )
    when = tuple(_condition(c, uses_auth) for c in rule.when or ())
    return CompiledRule(index, sources, operations, when)


def _clause(model: BaseModel, fields: dict[str, AttributeRef], uses_auth: list[bool]) -> Clause:
    checks: list[Check] = []
    for name, ref in fields.items():
        values = getattr(model, name) or None
        not_values = getattr(model, f"not_{name}") or None
        if values is None and not_values is None:
            continue
        uses_auth.append(ref.reads_request_auth)
        checks.append(
            Check(ref.name, ref.get, _matcher(values, ref.kind), _matcher(not_values, ref.kind))
        )
    return tuple(checks)


def _condition(condition: Condition, uses_auth: list[bool]) -> Check:
    ref = resolve_when_key(condition.key)
    assert not isinstance(ref, str), "validated: the key is a known attribute"
    uses_auth.append(ref.reads_request_auth)
    return Check(
        condition.key,
        ref.get,
        _matcher(condition.values or None, ref.kind),
        _matcher(condition.not_values or None, ref.kind),
    )


def _matcher(values: list[str] | None, kind: ValueKind) -> Matcher | None:
    if values is None:
        return None
    if kind is ValueKind.IP:
        return Cidrs.of(values)
    if kind is ValueKind.PORT:
        return Strings(exact=frozenset(str(int(v)) for v in values))
    return Strings.of(values, fold_case=kind is ValueKind.HOST)
