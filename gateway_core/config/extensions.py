"""Control path: this project's own Istio-style extension kinds.

Istio has no API for active health checks of upstream gateways or for signed sticky-session
cookies, so they live in a separate API group that Istio itself would simply not read. The
shape follows ``DestinationRule``: a ``host`` (same matching rules) plus policy blocks::

    apiVersion: gateway.multicluster.dev/v1alpha1
    kind: DestinationPolicy
    metadata: {name: tier2-gateways}
    spec:
      host: bookinfo.tier2.mesh
      healthCheck: {path: /healthz/ready, interval: 2s, timeout: 1s,
                    unhealthyThreshold: 2, healthyThreshold: 2}
      # or, for gRPC hosts: healthCheck: {grpc: {serviceName: ""}, interval: 2s}
      stickySession: {cookie: {name: gw-affinity, ttl: 1h}, target: SUBSET}
      spillover: {enabled: true}

``LocalRateLimit`` (same group) is a token bucket in front of the whole gateway, one
VirtualService (or one named route of it), optionally one bucket per client address, header
value or JWT claim (``docs/rate-limiting.md``).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gateway_core.config._base import ApiModel, Duration

EXTENSION_GROUP = "gateway.multicluster.dev"
EXTENSION_VERSIONS = ("v1alpha1",)


class GrpcHealthCheck(ApiModel):
    """Probe with ``grpc.health.v1.Health/Check`` instead of an HTTP GET (Envoy's
    ``grpc_health_check``): ``serviceName`` is the ``service`` of the request (``""``: the
    server as a whole), ``authority`` the ``:authority`` of the call."""

    service_name: str = ""
    authority: str | None = None


class HealthCheck(ApiModel):
    """Active health check of every endpoint of the host: an HTTP(S) GET of ``path``
    (Tier-1 probing Tier-2), or a ``grpc.health.v1`` call when ``grpc`` is set."""

    grpc: GrpcHealthCheck | None = None
    path: str = "/healthz/ready"
    interval: Duration = 5.0
    timeout: Duration = 1.0
    unhealthy_threshold: int = Field(default=2, ge=1)
    healthy_threshold: int = Field(default=2, ge=1)
    expected_statuses: list[int] = Field(default_factory=lambda: [200])
    host: str | None = None


class StickyTarget(StrEnum):
    SUBSET = "SUBSET"
    HOST = "HOST"


class StickyCookie(ApiModel):
    name: str = Field(default="gw-affinity", min_length=1)
    path: str = "/"
    ttl: Duration | None = None


class StickySession(ApiModel):
    """Signed cookie naming the chosen destination (subset or host), kept while it is healthy."""

    cookie: StickyCookie = Field(default_factory=StickyCookie)
    target: StickyTarget = Field(default=StickyTarget.HOST, strict=False)


class Spillover(ApiModel):
    """Move a weighted destination's share to the others when it has no healthy endpoint."""

    enabled: bool = True


class DestinationPolicySpec(ApiModel):
    host: str = Field(min_length=1)
    health_check: HealthCheck | None = None
    sticky_session: StickySession | None = None
    spillover: Spillover | None = None


class TokenBucket(ApiModel):
    """Envoy's ``token_bucket``: starts full with ``maxTokens``; every ``fillInterval``
    ``tokensPerFill`` tokens are added, up to ``maxTokens``; a request takes one."""

    max_tokens: int = Field(ge=1)
    tokens_per_fill: int = Field(default=1, ge=1)
    fill_interval: Duration


class HeaderKey(ApiModel):
    name: str = Field(min_length=1)


class ClaimKey(ApiModel):
    name: str = Field(min_length=1)
    """A claim of the verified JWT; ``a.b`` names claim ``b`` inside claim ``a``."""


class RemoteAddressKey(ApiModel):
    """The client address: the peer, or behind trusted proxies the X-Forwarded-For entry
    ``--xff-trusted-hops`` from the right."""


class RateLimitDescriptor(ApiModel):
    """One bucket per distinct value of exactly one of these."""

    remote_address: RemoteAddressKey | None = None
    request_header: HeaderKey | None = None
    claim: ClaimKey | None = None


DEFAULT_MAX_KEYS = 10000


class LocalRateLimitSpec(ApiModel):
    """A token bucket for the whole gateway (no ``virtualService``), for one VirtualService,
    or for one named route of it; with ``descriptor``, one bucket per value, at most
    ``maxKeys`` of them (least recently used evicted)."""

    virtual_service: str | None = None
    route: str | None = None
    token_bucket: TokenBucket
    descriptor: RateLimitDescriptor | None = None
    max_keys: int = Field(default=DEFAULT_MAX_KEYS, ge=1, le=1_000_000)


EXTENSION_KINDS: dict[str, type[ApiModel]] = {
    "DestinationPolicy": DestinationPolicySpec,
    "LocalRateLimit": LocalRateLimitSpec,
}
