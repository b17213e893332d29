"""Control path: Istio ``ServiceEntry`` and its ``WorkloadEntry`` endpoints."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gateway_core.config._base import ApiModel


class Resolution(StrEnum):
    NONE = "NONE"
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    DYNAMIC_DNS = "DYNAMIC_DNS"


class Location(StrEnum):
    MESH_EXTERNAL = "MESH_EXTERNAL"
    MESH_INTERNAL = "MESH_INTERNAL"


class ServicePort(ApiModel):
    """Istio ``ServicePort``: number, protocol, name, targetPort (defaults to number)."""

    number: int = Field(ge=1, le=65535)
    protocol: str | None = None
    name: str
    target_port: int | None = Field(default=None, ge=1, le=65535)


class WorkloadEntry(ApiModel):
    """One endpoint: address, per-port-name overrides, labels, locality, weight."""

    address: str | None = None
    ports: dict[str, int] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    network: str | None = None
    locality: str | None = None
    weight: int | None = Field(default=None, ge=0)
    service_account: str | None = None


class WorkloadSelector(ApiModel):
    labels: dict[str, str] = Field(default_factory=dict)


class ServiceEntrySpec(ApiModel):
    hosts: list[str] = Field(min_length=1, max_length=256)
    addresses: list[str] = Field(default_factory=list)
    ports: list[ServicePort] = Field(default_factory=list)
    location: Location = Field(default=Location.MESH_EXTERNAL, strict=False)
    resolution: Resolution = Field(default=Resolution.NONE, strict=False)
    endpoints: list[WorkloadEntry] = Field(default_factory=list, max_length=4096)
    workload_selector: WorkloadSelector | None = None
    export_to: list[str] = Field(default_factory=list)
    subject_alt_names: list[str] = Field(default_factory=list)
