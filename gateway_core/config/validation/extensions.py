"""Control path: checks of this project's extension kinds (``DestinationPolicy``; the checks of
``LocalRateLimit`` are in ``rate_limit.py``).

Structural limits (thresholds >= 1, known fields) are enforced by the pydantic model; this
module checks values that only make sense together, and that the policy's host names a
service this configuration knows. A gRPC health check is also checked against the upstream TLS
of the host's DestinationRule, because grpcio verifies certificates in one way only.
"""

from __future__ import annotations

import re

from gateway_core.config._base import ApiModel
from gateway_core.config.destination_rule import (
    ClientTLSMode,
    ClientTLSSettings,
    DestinationRuleSpec,
)
from gateway_core.config.extensions import (
    DestinationPolicySpec,
    GrpcHealthCheck,
    HealthCheck,
    LocalRateLimitSpec,
    StickySession,
)
from gateway_core.config.hosts import fqdn, hosts_intersect
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.validation._common import (
    Reporter,
    duration_error,
    format_seconds,
    wildcard_domain_error,
)
from gateway_core.config.validation.lookup import destination_rule_for
from gateway_core.config.validation.rate_limit import validate_local_rate_limit

# RFC 6265 cookie-name = token (RFC 7230 tchar).
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")


def validate_extension(res: Resource[ApiModel], resources: Resources, rep: Reporter) -> None:
    if isinstance(res.spec, DestinationPolicySpec):
        _validate_destination_policy(res.spec, res.namespace, resources, rep)
    elif isinstance(res.spec, LocalRateLimitSpec):
        validate_local_rate_limit(res.spec, res.namespace, resources, rep)


def _validate_destination_policy(
    spec: DestinationPolicySpec, namespace: str, resources: Resources, rep: Reporter
) -> None:
    error = wildcard_domain_error(spec.host)
    rep.error("spec.host", error)
    if error is None and not _known_host(fqdn(spec.host, namespace), resources):
        rep.warning(
            "spec.host",
            f"host {spec.host} matches no ServiceEntry, DestinationRule or route destination "
            "host; the policy has no effect",
        )
    if spec.health_check is not None:
        _validate_health_check(spec.health_check, "spec.healthCheck", rep)
        if spec.health_check.grpc is not None and error is None:
            _validate_grpc_tls(spec.host, namespace, resources, "spec.healthCheck.grpc", rep)
    if spec.sticky_session is not None:
        _validate_sticky_session(spec.sticky_session, "spec.stickySession", rep)


_VERIFYING = (ClientTLSMode.SIMPLE, ClientTLSMode.MUTUAL)

# HTTP-only fields of ``healthCheck`` (attribute, YAML name) and what a gRPC check uses instead.
_HTTP_ONLY = (
    ("path", "path", "the probe is grpc.health.v1.Health/Check"),
    ("expected_statuses", "expectedStatuses", "a gRPC probe passes on SERVING"),
    ("host", "host", "set grpc.authority instead"),
)


def _validate_health_check(check: HealthCheck, path: str, rep: Reporter) -> None:
    rep.error(f"{path}.interval", duration_error(check.interval))
    rep.error(f"{path}.timeout", duration_error(check.timeout))
    if check.timeout >= check.interval:
        rep.warning(
            f"{path}.timeout",
            f"timeout {format_seconds(check.timeout)} is not shorter than interval "
            f"{format_seconds(check.interval)}: a slow probe delays the next one",
        )
    if check.grpc is not None:
        for attr, name, instead in _HTTP_ONLY:
            if attr in check.model_fields_set:
                rep.error(
                    f"{path}.{name}",
                    f"{name} does not apply to a gRPC health check ({instead}); "
                    "remove it or remove grpc",
                )
        _validate_grpc(check.grpc, f"{path}.grpc", rep)
        return
    _validate_http(check, path, rep)


def _validate_grpc(grpc: GrpcHealthCheck, path: str, rep: Reporter) -> None:
    if grpc.authority is not None and (
        not grpc.authority or any(c.isspace() for c in grpc.authority)
    ):
        rep.error(
            f"{path}.authority", f"authority {grpc.authority!r} must be a non-empty host[:port]"
        )


def _validate_grpc_tls(
    host: str, namespace: str, resources: Resources, path: str, rep: Reporter
) -> None:
    """grpcio verifies the upstream certificate against the server name (SNI) and cannot skip
    verification: reject ``insecureSkipVerify``, warn that ``subjectAltNames`` is not used."""
    rule = destination_rule_for(resources, host, namespace)
    if rule is None:
        return
    where = f"DestinationRule {rule.namespace}/{rule.name}"
    settings = [s for s in _client_tls(rule.spec) if s.mode in _VERIFYING]
    if any(s.insecure_skip_verify for s in settings):
        rep.error(
            path,
            f"{where} sets tls.insecureSkipVerify, which a gRPC health check cannot honour "
            "(grpcio always verifies the upstream certificate); use an HTTP health check",
        )
    elif any(s.subject_alt_names for s in settings):
        rep.warning(
            path,
            f"{where} sets tls.subjectAltNames: a gRPC health probe checks the certificate "
            "against the server name (tls.sni, else grpc.authority or the host) instead",
        )


def _client_tls(rule: DestinationRuleSpec) -> list[ClientTLSSettings]:
    """Every ``tls`` block of the rule: top level, per port, per subset and subset port."""
    policies = [rule.traffic_policy] + [s.traffic_policy for s in rule.subsets]
    out: list[ClientTLSSettings] = []
    for policy in policies:
        if policy is None:
            continue
        blocks = [policy.tls] + [p.tls for p in policy.port_level_settings]
        out.extend(b for b in blocks if b is not None)
    return out


def _validate_http(check: HealthCheck, path: str, rep: Reporter) -> None:
    if not check.path.startswith("/"):
        rep.error(f"{path}.path", f"health check path {check.path!r} must start with '/'")
    if not check.expected_statuses:
        rep.error(f"{path}.expectedStatuses", "at least one expected status is required")
    for i, status in enumerate(check.expected_statuses):
        if not 100 <= status <= 599:
            rep.error(
                f"{path}.expectedStatuses[{i}]", f"HTTP status {status} is not in range 100-599"
            )
    if check.host is not None and not check.host:
        rep.error(f"{path}.host", "host must not be empty when set")


def _validate_sticky_session(sticky: StickySession, path: str, rep: Reporter) -> None:
    cookie = sticky.cookie
    if not _COOKIE_NAME.match(cookie.name):
        rep.error(f"{path}.cookie.name", f"cookie name {cookie.name!r} is not a valid token")
    if not cookie.path.startswith("/"):
        rep.error(f"{path}.cookie.path", f"cookie path {cookie.path!r} must start with '/'")
    # A ttl of 0s means a session cookie, as for Istio's consistentHash httpCookie.
    if cookie.ttl:
        rep.error(f"{path}.cookie.ttl", duration_error(cookie.ttl))


def _known_host(host: str, resources: Resources) -> bool:
    known: list[str] = []
    for se in resources.service_entries:
        known.extend(fqdn(h, se.namespace) for h in se.spec.hosts)
    for dr in resources.destination_rules:
        known.append(fqdn(dr.spec.host, dr.namespace))
    for vs in resources.virtual_services:
        for route in vs.spec.http:
            known.extend(fqdn(d.destination.host, vs.namespace) for d in route.route)
    return any(hosts_intersect(host, other) for other in known)
