"""Control path: ``LocalRateLimit`` resources and the loop guard → compiled filter settings.

A LocalRateLimit without ``virtualService`` joins the gateway-wide chain; one with it joins
the chain of every route of that VirtualService (or only of the route named ``route``), in
every route table the VirtualService is bound to. The loop guard comes from the node (the
gateway's id, hop secret and hop budget) and runs first in the gateway-wide chain.
"""

from __future__ import annotations

from gateway_core.config.extensions import LocalRateLimitSpec
from gateway_core.config.resources import Resource, Resources
from gateway_core.routing.loop_guard import LoopGuardSpec
from gateway_core.routing.ratelimit import KeySource, RateLimitSpec
from gateway_core.snapshot import NodeInfo


def compile_rate_limit(res: Resource[LocalRateLimitSpec]) -> RateLimitSpec:
    spec = res.spec
    bucket = spec.token_bucket
    source, header = KeySource.NONE, b""
    claim: tuple[str, ...] = ()
    descriptor = spec.descriptor
    if descriptor is not None:
        if descriptor.remote_address is not None:
            source = KeySource.REMOTE_ADDRESS
        elif descriptor.request_header is not None:
            source = KeySource.HEADER
            header = descriptor.request_header.name.lower().encode("latin-1")
        elif descriptor.claim is not None:
            source = KeySource.CLAIM
            claim = tuple(descriptor.claim.name.split("."))
    return RateLimitSpec(
        name=f"{res.namespace}/{res.name}",
        max_tokens=bucket.max_tokens,
        tokens_per_fill=bucket.tokens_per_fill,
        fill_interval=bucket.fill_interval,
        source=source,
        header=header,
        claim=claim,
        max_keys=spec.max_keys,
    )


def _limits(resources: Resources) -> list[Resource[LocalRateLimitSpec]]:
    out = []
    for res in resources.extensions_of("LocalRateLimit"):
        assert isinstance(res.spec, LocalRateLimitSpec)
        out.append(res)
    return out  # type: ignore[return-value]


def gateway_rate_limits(resources: Resources) -> tuple[RateLimitSpec, ...]:
    """The gateway-wide limits, in file order."""
    return tuple(
        compile_rate_limit(r) for r in _limits(resources) if r.spec.virtual_service is None
    )


RouteLimits = dict[str, list[tuple[str | None, RateLimitSpec]]]
"""``<namespace>/<virtualservice>`` → (route name or None for every route, limit)."""


def route_rate_limits(resources: Resources) -> RouteLimits:
    out: RouteLimits = {}
    for res in _limits(resources):
        target = res.spec.virtual_service
        if target is None:
            continue
        key = target if "/" in target else f"{res.namespace}/{target}"
        out.setdefault(key, []).append((res.spec.route, compile_rate_limit(res)))
    return out


def limits_for(limits: RouteLimits, vs_key: str, rule_name: str) -> tuple[RateLimitSpec, ...]:
    """The limits of one route (``rule_name``: its ``name``, possibly empty)."""
    return tuple(
        spec for route, spec in limits.get(vs_key, ()) if route is None or route == rule_name
    )


def loop_guard(node: NodeInfo) -> tuple[LoopGuardSpec, ...]:
    """The loop guard, when the node has a gateway id (every running gateway has one)."""
    if not node.gateway_id:
        return ()
    return (
        LoopGuardSpec(
            gateway_id=node.gateway_id.encode(),
            max_hops=node.max_gateway_hops,
            secret=node.hop_secret,
        ),
    )
