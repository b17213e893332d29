"""Control path: lookups over validated resources that the translation steps share.

Built once per compile (Istio ``PushContext`` indexes): services by FQDN host, destination rules
by FQDN host, destination policies (our extension) by host, gateways by ``namespace/name``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from gateway_core.compiler.ratelimits import RouteLimits, route_rate_limits
from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.extensions import DestinationPolicySpec
from gateway_core.config.gateway import GatewaySpec
from gateway_core.config.hosts import fqdn, host_matches
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.service_entry import ServiceEntrySpec


@dataclass(slots=True)
class ConfigIndex:
    resources: Resources
    gateways: dict[str, Resource[GatewaySpec]] = field(default_factory=dict)
    services: list[tuple[str, Resource[ServiceEntrySpec]]] = field(default_factory=list)
    rules: list[tuple[str, Resource[DestinationRuleSpec]]] = field(default_factory=list)
    policies: list[tuple[str, Resource[DestinationPolicySpec]]] = field(default_factory=list)
    rate_limits: RouteLimits = field(default_factory=dict)
    """LocalRateLimits by the VirtualService they apply to (``compiler/ratelimits.py``)."""

    @classmethod
    def build(cls, resources: Resources) -> ConfigIndex:
        index = cls(resources, rate_limits=route_rate_limits(resources))
        for gw in resources.gateways:
            index.gateways[f"{gw.namespace}/{gw.name}"] = gw
        for se in resources.service_entries:
            for host in se.spec.hosts:
                index.services.append((fqdn(host, se.namespace), se))
        for dr in resources.destination_rules:
            index.rules.append((fqdn(dr.spec.host, dr.namespace), dr))
        for ext in resources.extensions_of("DestinationPolicy"):
            assert isinstance(ext.spec, DestinationPolicySpec)
            index.policies.append((fqdn(ext.spec.host, ext.namespace), ext))  # type: ignore[arg-type]
        return index

    def service(self, host: str) -> Resource[ServiceEntrySpec] | None:
        """The ServiceEntry for a concrete FQDN: exact host first, then the narrowest wildcard."""
        return _lookup(self.services, host)

    def destination_rule(self, host: str) -> Resource[DestinationRuleSpec] | None:
        return _lookup(self.rules, host)

    def destination_policy(self, host: str) -> Resource[DestinationPolicySpec] | None:
        return _lookup(self.policies, host)


T = TypeVar("T")


def _lookup(entries: list[tuple[str, T]], host: str) -> T | None:
    best: tuple[int, T] | None = None
    for pattern, item in entries:
        if pattern == host:
            return item
        if host_matches(pattern, host) and (best is None or len(pattern) > best[0]):
            best = (len(pattern), item)
    return best[1] if best else None


def gateway_key(ref: str, namespace: str) -> str:
    """``name`` → ``<namespace>/name`` (the referring resource's namespace); ``ns/name`` as is."""
    return ref if "/" in ref else f"{namespace}/{ref}"
