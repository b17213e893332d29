"""Control path: checks of this project's extension kinds (``DestinationPolicy``).

Structural limits (thresholds >= 1, known fields) are enforced by the pydantic model; this
module checks values that only make sense together, and that the policy's host names a
service this configuration knows.
"""

from __future__ import annotations

import re

from gateway_core.config._base import ApiModel
from gateway_core.config.extensions import DestinationPolicySpec, HealthCheck, StickySession
from gateway_core.config.hosts import fqdn, hosts_intersect
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.validation._common import (
    Reporter,
    duration_error,
    format_seconds,
    wildcard_domain_error,
)

# RFC 6265 cookie-name = token (RFC 7230 tchar).
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$")


def validate_extension(res: Resource[ApiModel], resources: Resources, rep: Reporter) -> None:
    if isinstance(res.spec, DestinationPolicySpec):
        _validate_destination_policy(res.spec, res.namespace, resources, rep)


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
    if spec.sticky_session is not None:
        _validate_sticky_session(spec.sticky_session, "spec.stickySession", rep)


def _validate_health_check(check: HealthCheck, path: str, rep: Reporter) -> None:
    if not check.path.startswith("/"):
        rep.error(f"{path}.path", f"health check path {check.path!r} must start with '/'")
    rep.error(f"{path}.interval", duration_error(check.interval))
    rep.error(f"{path}.timeout", duration_error(check.timeout))
    if check.timeout >= check.interval:
        rep.warning(
            f"{path}.timeout",
            f"timeout {format_seconds(check.timeout)} is not shorter than interval "
            f"{format_seconds(check.interval)}: a slow probe delays the next one",
        )
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
