"""Control path: the typed bag of loaded documents and lookups by kind, namespace and name."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway_core.config._base import ApiModel
from gateway_core.config.authorization import AuthorizationPolicySpec
from gateway_core.config.common import ObjectMeta
from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.diagnostics import Origin
from gateway_core.config.gateway import GatewaySpec
from gateway_core.config.service_entry import ServiceEntrySpec
from gateway_core.config.virtual_service import VirtualServiceSpec

ISTIO_GROUP = "networking.istio.io"
ISTIO_VERSIONS = ("v1", "v1beta1", "v1alpha3")
SECURITY_GROUP = "security.istio.io"
SECURITY_VERSIONS = ("v1", "v1beta1")

SpecT = TypeVar("SpecT", bound=ApiModel)


@dataclass(frozen=True, slots=True)
class Resource(Generic[SpecT]):
    """One validated document: its kind, metadata, typed spec and where it came from."""

    kind: str
    api_version: str
    meta: ObjectMeta
    spec: SpecT
    origin: Origin

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def namespace(self) -> str:
        return self.meta.namespace

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.meta.namespace}/{self.meta.name}"


@dataclass(frozen=True, slots=True)
class Resources:
    """Everything one configuration holds, in file order."""

    gateways: tuple[Resource[GatewaySpec], ...] = ()
    virtual_services: tuple[Resource[VirtualServiceSpec], ...] = ()
    destination_rules: tuple[Resource[DestinationRuleSpec], ...] = ()
    service_entries: tuple[Resource[ServiceEntrySpec], ...] = ()
    extensions: tuple[Resource[ApiModel], ...] = field(default=())
    authorization_policies: tuple[Resource[AuthorizationPolicySpec], ...] = ()

    def all(self) -> Iterator[Resource[ApiModel]]:
        yield from self.gateways  # type: ignore[misc]
        yield from self.virtual_services  # type: ignore[misc]
        yield from self.destination_rules  # type: ignore[misc]
        yield from self.service_entries  # type: ignore[misc]
        yield from self.extensions
        yield from self.authorization_policies  # type: ignore[misc]

    def gateway(self, namespace: str, name: str) -> Resource[GatewaySpec] | None:
        for gw in self.gateways:
            if gw.meta.name == name and gw.meta.namespace == namespace:
                return gw
        return None

    def extensions_of(self, kind: str) -> Sequence[Resource[ApiModel]]:
        return [r for r in self.extensions if r.kind == kind]


KIND_SPECS: dict[str, type[ApiModel]] = {
    "Gateway": GatewaySpec,
    "VirtualService": VirtualServiceSpec,
    "DestinationRule": DestinationRuleSpec,
    "ServiceEntry": ServiceEntrySpec,
}

SECURITY_KINDS: dict[str, type[ApiModel]] = {"AuthorizationPolicy": AuthorizationPolicySpec}
"""Kinds of ``security.istio.io`` this gateway reads."""
