"""Control path: Istio ``VirtualService`` (virtual_service.proto), HTTP part in full.

``tls`` and ``tcp`` routes are accepted so Istio YAML loads, and reported as unsupported
by validation (this gateway terminates HTTP only).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from gateway_core.config._base import ApiModel, Duration
from gateway_core.config.common import Percent, PortSelector, StringMatch

GRPC_STATUS_CODES: dict[str, int] = {
    name: code
    for code, name in enumerate(
        (
            "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
            "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
            "UNAUTHENTICATED",
        )
    )
}  # fmt: skip
"""gRPC status names as Istio's ``grpcStatus`` writes them, and their codes (validation
checks ``grpcStatus`` against it, the compiler maps it)."""


class HTTPMatchRequest(ApiModel):
    """Istio ``HTTPMatchRequest``: all set conditions must hold (AND)."""

    name: str | None = None
    uri: StringMatch | None = None
    scheme: StringMatch | None = None
    method: StringMatch | None = None
    authority: StringMatch | None = None
    headers: dict[str, StringMatch] = Field(default_factory=dict)
    port: int | None = Field(default=None, ge=0, le=65535)
    source_labels: dict[str, str] = Field(default_factory=dict)
    gateways: list[str] = Field(default_factory=list)
    query_params: dict[str, StringMatch] = Field(default_factory=dict)
    ignore_uri_case: bool = False
    without_headers: dict[str, StringMatch] = Field(default_factory=dict)
    source_namespace: str | None = None
    stat_prefix: str | None = None


class HeaderOperations(ApiModel):
    """``set`` overwrites, ``add`` appends, ``remove`` deletes (by name, case-insensitive)."""

    set: dict[str, str] = Field(default_factory=dict)
    add: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Headers(ApiModel):
    request: HeaderOperations | None = None
    response: HeaderOperations | None = None


class Destination(ApiModel):
    """Istio ``Destination``: host (short names are relative to the VirtualService namespace)."""

    host: str = Field(min_length=1)
    subset: str | None = None
    port: PortSelector | None = None


class HTTPRouteDestination(ApiModel):
    destination: Destination
    weight: int = 0
    headers: Headers | None = None


class RedirectPortSelection(StrEnum):
    FROM_PROTOCOL_DEFAULT = "FROM_PROTOCOL_DEFAULT"
    FROM_REQUEST_PORT = "FROM_REQUEST_PORT"


class HTTPRedirect(ApiModel):
    """Istio ``HTTPRedirect``; ``redirectCode`` defaults to 301."""

    uri: str | None = None
    authority: str | None = None
    port: int | None = Field(default=None, ge=0, le=65535)
    derive_port: RedirectPortSelection | None = Field(default=None, strict=False)
    scheme: str | None = None
    redirect_code: int = 301
    prefix_rewrite: str | None = None

    @model_validator(mode="after")
    def _port_oneof(self) -> HTTPRedirect:
        if self.port is not None and self.derive_port is not None:
            raise ValueError("only one of port or derivePort may be set")
        return self


class RegexRewrite(ApiModel):
    match: str
    rewrite: str


class HTTPRewrite(ApiModel):
    uri: str | None = None
    authority: str | None = None
    uri_regex_rewrite: RegexRewrite | None = None


class HTTPBody(ApiModel):
    string: str | None = None
    bytes: str | None = None


class HTTPDirectResponse(ApiModel):
    status: int
    body: HTTPBody | None = None


class HTTPRetry(ApiModel):
    attempts: int = Field(default=0, ge=0)
    per_try_timeout: Duration | None = None
    retry_on: str | None = None
    retry_remote_localities: bool | None = None
    retry_ignore_previous_hosts: bool | None = None
    backoff: Duration | None = None


class Delay(ApiModel):
    fixed_delay: Duration | None = None
    exponential_delay: Duration | None = None
    percentage: Percent | None = None
    percent: int | None = None


class Abort(ApiModel):
    http_status: int | None = None
    grpc_status: str | None = None
    http2_error: str | None = None
    percentage: Percent | None = None


class HTTPFaultInjection(ApiModel):
    delay: Delay | None = None
    abort: Abort | None = None


class HTTPMirrorPolicy(ApiModel):
    destination: Destination
    percentage: Percent | None = None


class CorsPolicy(ApiModel):
    allow_origins: list[StringMatch] = Field(default_factory=list)
    allow_origin: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=list)
    allow_headers: list[str] = Field(default_factory=list)
    expose_headers: list[str] = Field(default_factory=list)
    max_age: Duration | None = None
    allow_credentials: bool | None = None
    unmatched_preflights: str | None = None


class Delegate(ApiModel):
    name: str
    namespace: str | None = None


class HTTPRoute(ApiModel):
    """Istio ``HTTPRoute``: rules are evaluated in order, the first match wins."""

    name: str | None = None
    match: list[HTTPMatchRequest] = Field(default_factory=list)
    route: list[HTTPRouteDestination] = Field(default_factory=list)
    redirect: HTTPRedirect | None = None
    direct_response: HTTPDirectResponse | None = None
    delegate: Delegate | None = None
    rewrite: HTTPRewrite | None = None
    timeout: Duration | None = None
    retries: HTTPRetry | None = None
    fault: HTTPFaultInjection | None = None
    mirror: Destination | None = None
    mirrors: list[HTTPMirrorPolicy] = Field(default_factory=list)
    mirror_percent: int | None = None
    mirror_percentage: Percent | None = None
    cors_policy: CorsPolicy | None = None
    headers: Headers | None = None


class VirtualServiceSpec(ApiModel):
    hosts: list[str] = Field(default_factory=list)
    gateways: list[str] = Field(default_factory=list)
    http: list[HTTPRoute] = Field(default_factory=list)
    tls: list[dict[str, Any]] = Field(default_factory=list)
    tcp: list[dict[str, Any]] = Field(default_factory=list)
    export_to: list[str] = Field(default_factory=list)
