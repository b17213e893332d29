"""Control path: Istio-faithful semantic validation of loaded configuration.

The loader already enforces structure and types; this package checks meaning the way Istio's
admission validation does (durations, regexes, route conflicts, TLS, traffic policies, ...),
plus what this HTTP-only gateway cannot serve, plus the references between resources.
Every problem is reported (never only the first), each with its origin, resource ref and the
camelCase field path of the YAML (``spec.http[0].route[1].weight``).
"""

from __future__ import annotations

from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.resources import Resources
from gateway_core.config.security import RequestAuthenticationSpec
from gateway_core.config.validation._common import Reporter
from gateway_core.config.validation.authorization import validate_authorization_policy
from gateway_core.config.validation.destination_rule import validate_destination_rule
from gateway_core.config.validation.extensions import validate_extension
from gateway_core.config.validation.gateway import validate_gateway
from gateway_core.config.validation.lookup import destination_rule_for, service_entry_for
from gateway_core.config.validation.references import resolve_gateway_name, validate_references
from gateway_core.config.validation.request_authentication import validate_request_authentication
from gateway_core.config.validation.service_entry import validate_service_entry
from gateway_core.config.validation.virtual_service import validate_virtual_service


def validate_resources(resources: Resources, diags: Diagnostics) -> None:
    """Append every semantic error and warning of ``resources`` to ``diags``."""
    for gw in resources.gateways:
        validate_gateway(gw, Reporter(diags, gw.origin, gw.ref))
    for vs in resources.virtual_services:
        validate_virtual_service(vs, Reporter(diags, vs.origin, vs.ref))
    for dr in resources.destination_rules:
        validate_destination_rule(dr, Reporter(diags, dr.origin, dr.ref))
    for se in resources.service_entries:
        validate_service_entry(se, Reporter(diags, se.origin, se.ref))
    for ext in resources.extensions:
        rep = Reporter(diags, ext.origin, ext.ref)
        if isinstance(ext.spec, RequestAuthenticationSpec):
            validate_request_authentication(ext, resources, rep)  # type: ignore[arg-type]
        else:
            validate_extension(ext, resources, rep)
    for ap in resources.authorization_policies:
        validate_authorization_policy(ap.spec, Reporter(diags, ap.origin, ap.ref))
    validate_references(resources, diags)


__all__ = [
    "destination_rule_for",
    "resolve_gateway_name",
    "service_entry_for",
    "validate_resources",
]
