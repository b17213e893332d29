"""Control path: checks of one ``HTTPRoute`` of a VirtualService (Istio ``validateHTTPRoute``).

Destination hosts are checked with the cross-resource rules in ``references`` (they need the
ServiceEntries); everything else about a rule is checked here.
"""

from __future__ import annotations

from gateway_core.config.common import StringMatch
from gateway_core.config.security import CLAIM_PREFIX
from gateway_core.config.validation import http_actions
from gateway_core.config.validation._common import (
    Reporter,
    duration_error,
    header_name_error,
    header_underscore_warning,
    header_value_error,
    is_dns1123_label,
    labels_errors,
    port_error,
    quote,
    regex_error,
    validate_gateway_names,
)
from gateway_core.config.virtual_service import (
    Destination,
    HeaderOperations,
    Headers,
    HTTPMatchRequest,
    HTTPRoute,
    HTTPRouteDestination,
)

AUTHORITY_HEADERS = frozenset({":authority", "host"})


def validate_http_route(route: HTTPRoute, path: str, rep: Reporter) -> None:
    _validate_conflicts(route, path, rep)
    for j, match in enumerate(route.match):
        _validate_match(match, f"{path}.match[{j}]", rep)
    if route.headers is not None:
        validate_headers(route.headers, f"{path}.headers", rep)
    _validate_authority_rewrite(route, path, rep)
    if route.cors_policy is not None:
        http_actions.validate_cors(route.cors_policy, f"{path}.corsPolicy", rep)
    if route.fault is not None:
        http_actions.validate_fault(route.fault, f"{path}.fault", rep)
    _validate_mirrors(route, path, rep)
    if route.redirect is not None:
        http_actions.validate_redirect(route.redirect, f"{path}.redirect", rep)
    if route.direct_response is not None:
        http_actions.validate_direct_response(route.direct_response, f"{path}.directResponse", rep)
    if route.retries is not None:
        http_actions.validate_retries(route.retries, f"{path}.retries", rep)
    if route.rewrite is not None:
        http_actions.validate_rewrite(route.rewrite, f"{path}.rewrite", rep)
    _validate_destinations(route.route, f"{path}.route", rep)
    if route.timeout is not None:
        rep.error(f"{path}.timeout", duration_error(route.timeout))


def _validate_conflicts(route: HTTPRoute, path: str, rep: Reporter) -> None:
    """Istio ``validateHTTPRouteConflict``; delegation itself is unsupported here."""
    if route.delegate is not None:
        rep.error(
            f"{path}.delegate",
            "delegate is not supported by this gateway: put the delegated routes in this "
            "VirtualService",
        )
        return
    has_route = bool(route.route)
    if route.redirect is not None:
        if has_route:
            rep.error(path, "HTTP route cannot contain both route and redirect")
        if route.fault is not None:
            rep.error(path, "HTTP route cannot contain both fault and redirect")
        if route.rewrite is not None:
            rep.error(path, "HTTP route rule cannot contain both rewrite and redirect")
        if route.direct_response is not None:
            rep.error(path, "HTTP route rule cannot contain both direct_response and redirect")
    elif route.direct_response is not None:
        if has_route:
            rep.error(path, "HTTP route cannot contain both route and direct_response")
        if route.fault is not None:
            rep.error(path, "HTTP route cannot contain both fault and direct_response")
        if route.rewrite is not None:
            rep.error(path, "HTTP route rule cannot contain both rewrite and direct_response")
    elif not has_route:
        rep.error(path, "HTTP route, redirect or direct_response is required")
    if route.mirror is not None and route.mirrors:
        rep.error(path, "HTTP route cannot contain both mirror and mirrors")


def _validate_match(match: HTTPMatchRequest, path: str, rep: Reporter) -> None:
    for name, value in match.headers.items():
        if name.startswith(CLAIM_PREFIX):
            rep.error(f"{path}.headers.{name}", claim_name_error(name))
            validate_string_match(value, f"{path}.headers.{name}", rep)
            continue
        rep.error(f"{path}.headers.{name}", header_name_error(name))
        rep.warning(f"{path}.headers.{name}", header_underscore_warning(name))
        validate_string_match(value, f"{path}.headers.{name}", rep)
    for name, value in match.without_headers.items():
        if name.startswith(CLAIM_PREFIX):
            rep.error(f"{path}.withoutHeaders.{name}", claim_name_error(name))
        else:
            rep.error(f"{path}.withoutHeaders.{name}", header_name_error(name))
        # `regex: "*"` is Istio's spelling of "header present", not an RE2 pattern.
        if value.regex != "*":
            validate_string_match(value, f"{path}.withoutHeaders.{name}", rep)
    if match.uri is not None:
        validate_string_match(match.uri, f"{path}.uri", rep, empty_prefix_ok=True)
    for field, pseudo in (
        ("scheme", match.scheme),
        ("method", match.method),
        ("authority", match.authority),
    ):
        if pseudo is not None:
            validate_string_match(pseudo, f"{path}.{field}", rep)
    for name, param in match.query_params.items():
        validate_string_match(param, f"{path}.queryParams.{name}", rep)
    if match.port:
        rep.error(f"{path}.port", port_error(match.port))
    for message in labels_errors(match.source_labels):
        rep.error(f"{path}.sourceLabels", message)
    validate_gateway_names(match.gateways, f"{path}.gateways", rep)
    if match.source_namespace and not is_dns1123_label(match.source_namespace):
        rep.error(
            f"{path}.sourceNamespace", f"sourceNamespace match {match.source_namespace} is invalid"
        )


def claim_name_error(name: str) -> str | None:
    """``@request.auth.claims.<name>``, nested names separated by ``.``."""
    claim = name[len(CLAIM_PREFIX) :]
    if not claim or any(not part for part in claim.split(".")):
        return f"invalid JWT claim match {name}: use @request.auth.claims.<name>[.<nested>]"
    return None


def validate_string_match(
    value: StringMatch, path: str, rep: Reporter, *, empty_prefix_ok: bool = False
) -> None:
    """Envoy accepts an empty URI prefix but not an empty prefix for other strings."""
    if value.prefix == "" and not empty_prefix_ok:
        rep.error(f"{path}.prefix", "prefix string match should not be empty")
    if value.regex is not None:
        if value.regex == "":
            rep.error(f"{path}.regex", "regex string match should not be empty")
        else:
            rep.error(f"{path}.regex", regex_error(value.regex))


def validate_headers(headers: Headers, path: str, rep: Reporter) -> None:
    if headers.request is not None:
        _validate_operations(headers.request, f"{path}.request", rep, request=True)
    if headers.response is not None:
        _validate_operations(headers.response, f"{path}.response", rep, request=False)


def _validate_operations(ops: HeaderOperations, path: str, rep: Reporter, *, request: bool) -> None:
    for field, items in (("set", ops.set), ("add", ops.add)):
        for name, value in items.items():
            check = _request_write_name_error if request else _header_operation_name_error
            rep.error(f"{path}.{field}.{name}", check(name))
            rep.error(f"{path}.{field}.{name}", header_value_error(value))
    for i, name in enumerate(ops.remove):
        rep.error(f"{path}.remove[{i}]", _header_operation_name_error(name))


def _request_write_name_error(name: str) -> str | None:
    """Request headers may set the authority (checked separately), never other ':' headers."""
    if not name:
        return "header name cannot be empty"
    if name.startswith(":") and name.lower() != ":authority":
        return f'invalid header {quote(name)}: header cannot have ":" prefix'
    return None


def _header_operation_name_error(name: str) -> str | None:
    if not name:
        return "header name cannot be empty"
    if name.lower() == "host":
        return f"invalid header {quote(name)}: cannot set Host header"
    if name.startswith(":"):
        return f'invalid header {quote(name)}: header cannot have ":" prefix'
    return None


def _validate_authority_rewrite(route: HTTPRoute, path: str, rep: Reporter) -> None:
    """The authority may be rewritten in one place only (Istio ``validateAuthorityRewrite``)."""
    current = route.rewrite.authority if route.rewrite is not None else None
    request = route.headers.request if route.headers is not None else None
    if request is None:
        return
    for field, items in (("set", request.set), ("add", request.add)):
        for name, value in items.items():
            if name.lower() not in AUTHORITY_HEADERS:
                continue
            if current:
                rep.error(
                    f"{path}.headers.request.{field}.{name}",
                    "authority header cannot be set multiple times: "
                    f"have {quote(current)}, attempting to set {quote(value)}",
                )
                return
            current = value


def _validate_mirrors(route: HTTPRoute, path: str, rep: Reporter) -> None:
    if route.mirror is not None:
        validate_destination(route.mirror, f"{path}.mirror", rep)
    for i, mirror in enumerate(route.mirrors):
        validate_destination(mirror.destination, f"{path}.mirrors[{i}].destination", rep)
    if route.mirror_percent is not None:
        if route.mirror_percent > 100:
            rep.error(
                f"{path}.mirrorPercent",
                f"mirror_percent must have a max value of 100 (it has {route.mirror_percent})",
            )
        rep.warning(
            f"{path}.mirrorPercent",
            'using deprecated setting "mirrorPercent", use "mirrorPercentage" instead',
        )


def _validate_destinations(routes: list[HTTPRouteDestination], path: str, rep: Reporter) -> None:
    total = 0
    for k, dest in enumerate(routes):
        entry = f"{path}[{k}]"
        validate_destination(dest.destination, f"{entry}.destination", rep)
        if dest.headers is not None:
            validate_headers(dest.headers, f"{entry}.headers", rep)
        if dest.weight < 0:
            rep.error(f"{entry}.weight", f"weight {dest.weight} < 0")
        total += dest.weight
    if len(routes) > 1 and total == 0:
        rep.error(path, "total destination weight = 0")


def validate_destination(dest: Destination, path: str, rep: Reporter) -> None:
    """Subset and port syntax; the host is checked against the ServiceEntries in ``references``."""
    if dest.subset is not None:
        if not dest.subset:
            rep.error(f"{path}.subset", "subset name cannot be empty")
        elif not is_dns1123_label(dest.subset):
            rep.error(f"{path}.subset", f"subset name is invalid: {dest.subset}")
    if dest.port is not None:
        rep.error(f"{path}.port.number", port_error(dest.port.number))
