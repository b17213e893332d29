"""Control path: checks of ``LocalRateLimit`` (this project's extension kind).

The pydantic model already enforces types and lower bounds (``maxTokens`` >= 1, ...); here:
the fill interval (at least 50ms, as Envoy's ``local_ratelimit`` requires), that a descriptor
names exactly one source and a usable header or claim, and that the VirtualService (and the
named route) the limit applies to exist: a limit that silently applied to nothing would leave
a service unprotected, so that is an error, not a warning.
"""

from __future__ import annotations

from gateway_core.config.extensions import LocalRateLimitSpec, RateLimitDescriptor
from gateway_core.config.resources import Resources
from gateway_core.config.validation._common import (
    Reporter,
    duration_error,
    format_seconds,
    header_name_error,
)

MIN_FILL_INTERVAL = 0.05


def validate_local_rate_limit(
    spec: LocalRateLimitSpec, namespace: str, resources: Resources, rep: Reporter
) -> None:
    interval = spec.token_bucket.fill_interval
    path = "spec.tokenBucket.fillInterval"
    error = duration_error(interval)
    rep.error(path, error)
    if error is None and interval < MIN_FILL_INTERVAL:
        rep.error(
            path,
            f"fillInterval {format_seconds(interval)} is shorter than "
            f"{format_seconds(MIN_FILL_INTERVAL)}",
        )
    if spec.token_bucket.tokens_per_fill > spec.token_bucket.max_tokens:
        rep.warning(
            "spec.tokenBucket.tokensPerFill",
            "tokensPerFill is larger than maxTokens: a bucket never holds more than maxTokens",
        )
    if spec.descriptor is not None:
        _validate_descriptor(spec.descriptor, rep)
    elif "max_keys" in spec.model_fields_set:
        rep.warning("spec.maxKeys", "maxKeys has no effect without a descriptor")
    _validate_target(spec, namespace, resources, rep)


def _validate_descriptor(descriptor: RateLimitDescriptor, rep: Reporter) -> None:
    path = "spec.descriptor"
    chosen = [name for name in descriptor.model_fields_set if getattr(descriptor, name) is not None]
    if len(chosen) != 1:
        rep.error(path, "exactly one of remoteAddress, requestHeader or claim must be set")
        return
    if descriptor.request_header is not None:
        name = descriptor.request_header.name
        rep.error(f"{path}.requestHeader.name", header_name_error(name))
        if name.startswith(":"):
            rep.error(
                f"{path}.requestHeader.name",
                f"pseudo-header {name} cannot pick a bucket; use a regular header",
            )
    if descriptor.claim is not None and any(not p for p in descriptor.claim.name.split(".")):
        rep.error(
            f"{path}.claim.name",
            f"claim name {descriptor.claim.name!r} has an empty part ('.' separates nested claims)",
        )


def _validate_target(
    spec: LocalRateLimitSpec, namespace: str, resources: Resources, rep: Reporter
) -> None:
    target = spec.virtual_service
    if target is None:
        if spec.route is not None:
            rep.error("spec.route", "route needs virtualService (the VirtualService it is in)")
        return
    ns, _, name = target.rpartition("/")
    ns = ns or namespace
    vs = next((v for v in resources.virtual_services if v.namespace == ns and v.name == name), None)
    if vs is None:
        rep.error("spec.virtualService", f"VirtualService {ns}/{name} not found")
        return
    if spec.route is not None and all(rule.name != spec.route for rule in vs.spec.http):
        rep.error(
            "spec.route",
            f"VirtualService {ns}/{name} has no http route named {spec.route!r}",
        )
