"""Control path: checks of Istio ``AuthorizationPolicy`` (Istio's ``ValidateAuthorizationPolicy``).

The loader already refused unknown fields; this checks meaning: CUSTOM (external authorization)
is not supported, ``selector`` and ``targetRef(s)`` exclude each other, ``from``/``to`` entries
must say something, IP blocks and ports must parse, ``when`` keys must be attributes this
gateway reads, and path templates (``{*}``, ``{**}``) are refused rather than matched literally.
An empty list counts as unset, as in Istio (proto3 cannot tell them apart).
"""

from __future__ import annotations

from pydantic import BaseModel
from pydantic.alias_generators import to_camel as camel

from gateway_core.config.authorization import (
    AuthorizationAction,
    AuthorizationPolicySpec,
    Condition,
    Operation,
    PolicyTargetReference,
    Rule,
    Source,
)
from gateway_core.config.validation._common import Reporter, ip_subnet_error, quote
from gateway_core.security.attributes import (
    OPERATION_FIELDS,
    SOURCE_FIELDS,
    AttributeRef,
    ValueKind,
    resolve_when_key,
)


def validate_authorization_policy(spec: AuthorizationPolicySpec, rep: Reporter) -> None:
    if spec.action is AuthorizationAction.CUSTOM:
        rep.error(
            "spec.action",
            "action CUSTOM (external authorization through an extension provider) is not "
            "supported by this gateway; use ALLOW, DENY or AUDIT",
        )
    elif spec.provider is not None:
        rep.error(
            "spec.provider", f"provider may only be set with action CUSTOM, not {spec.action}"
        )
    targets = [n for n in ("selector", "target_ref", "target_refs") if getattr(spec, n) is not None]
    if len(targets) > 1:
        rep.error(
            "spec",
            "only one of selector, targetRef or targetRefs may be set, found " + _names(targets),
        )
    if spec.target_ref is not None:
        _validate_target(spec.target_ref, "spec.targetRef", rep)
    for i, ref in enumerate(spec.target_refs or ()):
        _validate_target(ref, f"spec.targetRefs[{i}]", rep)
    for i, rule in enumerate(spec.rules or ()):
        _validate_rule(rule, f"spec.rules[{i}]", rep)


def _names(attrs: list[str]) -> str:
    return ", ".join(camel(a) for a in attrs)


def _validate_target(ref: PolicyTargetReference, path: str, rep: Reporter) -> None:
    if not ref.kind:
        rep.error(f"{path}.kind", "kind is required")
    if not ref.name:
        rep.error(f"{path}.name", "name is required")


def _validate_rule(rule: Rule, path: str, rep: Reporter) -> None:
    if rule.from_ is not None and not rule.from_:
        rep.error(f"{path}.from", "`from` must not be empty")
    for j, entry in enumerate(rule.from_ or ()):
        where = f"{path}.from[{j}].source"
        if entry.source is None:
            rep.error(where, "`from.source` must not be nil")
        elif _is_empty(entry.source):
            rep.error(where, "`from.source` must not be empty")
        else:
            _validate_fields(entry.source, SOURCE_FIELDS, where, rep)
    if rule.to is not None and not rule.to:
        rep.error(f"{path}.to", "`to` must not be empty")
    for j, target in enumerate(rule.to or ()):
        where = f"{path}.to[{j}].operation"
        if target.operation is None:
            rep.error(where, "`to.operation` must not be nil")
        elif _is_empty(target.operation):
            rep.error(where, "`to.operation` must not be empty")
        else:
            _validate_fields(target.operation, OPERATION_FIELDS, where, rep)
    for j, condition in enumerate(rule.when or ()):
        _validate_condition(condition, f"{path}.when[{j}]", rep)


def _is_empty(model: Source | Operation) -> bool:
    return not any(getattr(model, name) for name in type(model).model_fields)


def _validate_fields(
    model: BaseModel, fields: dict[str, AttributeRef], path: str, rep: Reporter
) -> None:
    for name, ref in fields.items():
        for attr in (name, f"not_{name}"):
            values = getattr(model, attr)
            if values:
                _validate_values(values, ref.kind, f"{path}.{camel(attr)}", rep)


def _validate_condition(condition: Condition, path: str, rep: Reporter) -> None:
    if not condition.key:
        rep.error(f"{path}.key", "`key` must not be empty")
        return
    ref = resolve_when_key(condition.key)
    if isinstance(ref, str):
        rep.error(f"{path}.key", ref)
        return
    if not condition.values and not condition.not_values:
        rep.error(
            path, f"at least one of `values` or `notValues` must be set for key {condition.key}"
        )
    for attr in ("values", "not_values"):
        values = getattr(condition, attr)
        if values:
            _validate_values(values, ref.kind, f"{path}.{camel(attr)}", rep)


def _validate_values(values: list[str], kind: ValueKind, path: str, rep: Reporter) -> None:
    for k, value in enumerate(values):
        where = f"{path}[{k}]"
        if not value:
            rep.error(where, "empty value not allowed")
        elif kind is ValueKind.IP:
            rep.error(where, ip_subnet_error(value.strip()))
        elif kind is ValueKind.PORT:
            rep.error(where, _port_error(value))
        elif path.endswith(("paths", "Paths")) and ("{" in value or "}" in value):
            rep.error(
                where,
                f"path template {quote(value)} ({{*}}, {{**}}) is not supported by this "
                "gateway; use exact, prefix (abc*) or suffix (*abc) paths",
            )


def _port_error(value: str) -> str | None:
    if value.isdigit() and 0 <= int(value) <= 65535:
        return None
    return f"invalid port {quote(value)}: must be a number from 0 to 65535"
