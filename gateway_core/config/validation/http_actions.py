"""Control path: checks of the actions of one HTTP route (redirect, direct response, rewrite,
retries, fault injection, CORS), worded like Istio's ``validateHTTP*`` functions."""

from __future__ import annotations

import base64
import binascii

from gateway_core.config.validation._common import (
    Reporter,
    cors_header_name_error,
    duration_error,
    int_percent_error,
    percentage_error,
    port_error,
    quote,
    regex_error,
    regex_rewrite_error,
)
from gateway_core.config.virtual_service import (
    GRPC_STATUS_CODES,
    Abort,
    CorsPolicy,
    Delay,
    HTTPDirectResponse,
    HTTPFaultInjection,
    HTTPRedirect,
    HTTPRetry,
    HTTPRewrite,
)

KIB = 1024
MIB = 1024 * KIB

SUPPORTED_RETRY_ON = frozenset(
    {
        "5xx",
        "gateway-error",
        "reset",
        "reset-before-request",
        "connect-failure",
        "retriable-4xx",
        "refused-stream",
        "retriable-status-codes",
        "retriable-headers",
        "envoy-ratelimited",
        "http3-post-connect-failure",
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    }
)

# Status codes Go's net/http.StatusText knows: Istio accepts exactly these as retryOn entries.
KNOWN_STATUS_CODES = frozenset(
    (
        *(100, 101, 102, 103),
        *range(200, 209),
        226,
        *range(300, 306),
        307,
        308,
        *range(400, 419),
        *(421, 422, 423, 424, 425, 426, 428, 429, 431, 451),
        *range(500, 509),
        510,
        511,
    )
)

CORS_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*"}
)
UNMATCHED_PREFLIGHTS = frozenset({"UNSPECIFIED", "FORWARD", "IGNORE"})


def http_status_error(status: int) -> str | None:
    if 200 <= status <= 599:
        return None
    return f"HTTP status {status} is not in range 200-599"


def validate_redirect(redirect: HTTPRedirect, path: str, rep: Reporter) -> None:
    has_port = redirect.port is not None or redirect.derive_port is not None
    has_path = bool(redirect.uri or redirect.prefix_rewrite)
    if not (has_path or redirect.authority or redirect.scheme or has_port):
        rep.error(path, "redirect must specify URI, authority, scheme, or port")
    if redirect.uri and redirect.prefix_rewrite:
        rep.error(f"{path}.prefixRewrite", "redirect may only contain one of uri or prefixRewrite")
    code = redirect.redirect_code
    if code != 0 and not 300 <= code <= 399:
        rep.error(f"{path}.redirectCode", f"{code} is not a valid redirect code, must be 3xx")
    if redirect.scheme and redirect.scheme not in ("http", "https"):
        rep.error(f"{path}.scheme", 'invalid redirect scheme, must be "http" or "https"')
    if redirect.port:
        rep.error(f"{path}.port", port_error(redirect.port))


def validate_direct_response(response: HTTPDirectResponse, path: str, rep: Reporter) -> None:
    rep.error(f"{path}.status", http_status_error(response.status))
    body = response.body
    if body is None:
        return
    if body.string is not None and body.bytes is not None:
        rep.error(f"{path}.body", "only one of string or bytes may be set")
    size = 0
    if body.string is not None:
        size = len(body.string.encode("utf-8"))
    elif body.bytes is not None:
        try:
            size = len(base64.b64decode(body.bytes, validate=True))
        except (binascii.Error, ValueError):
            rep.error(f"{path}.body.bytes", "bytes must be base64-encoded")
    if size > MIB:
        rep.error(
            f"{path}.body",
            "large direct_responses may impact control plane performance, must be less than 1MB",
        )
    elif size > 100 * KIB:
        rep.warning(f"{path}.body", "large direct_responses may impact control plane performance")


def validate_rewrite(rewrite: HTTPRewrite, path: str, rep: Reporter) -> None:
    regex_rewrite = rewrite.uri_regex_rewrite
    if rewrite.uri and regex_rewrite is not None:
        rep.error(path, "rewrite may only contain one of URI or UriRegexRewrite")
    if not rewrite.uri and regex_rewrite is None and not rewrite.authority:
        rep.error(
            path,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. "
            "Only one of URI or UriRegexRewrite may be specified",
        )
    if regex_rewrite is None:
        return
    if not regex_rewrite.match or not regex_rewrite.rewrite:
        rep.error(
            f"{path}.uriRegexRewrite",
            "UriRegexRewrite requires both Rewrite and Match fields to be specified",
        )
    if regex_rewrite.match:
        match_error = regex_error(regex_rewrite.match)
        rep.error(f"{path}.uriRegexRewrite.match", match_error)
        if match_error is None and regex_rewrite.rewrite:
            rep.error(
                f"{path}.uriRegexRewrite.rewrite",
                regex_rewrite_error(regex_rewrite.match, regex_rewrite.rewrite),
            )


def validate_retries(retries: HTTPRetry, path: str, rep: Reporter) -> None:
    configured = (
        retries.per_try_timeout is not None
        or bool(retries.retry_on)
        or retries.retry_remote_localities is not None
    )
    if retries.attempts == 0 and configured:
        rep.error(path, "http retry policy configured when attempts are set to 0 (disabled)")
    if retries.per_try_timeout is not None:
        rep.error(f"{path}.perTryTimeout", duration_error(retries.per_try_timeout))
    if retries.retry_on:
        for policy in retries.retry_on.split(","):
            if not _retry_on_ok(policy):
                rep.error(f"{path}.retryOn", f"{quote(policy)} is not a valid retryOn policy")
    if retries.backoff is not None:
        rep.error(f"{path}.backoff", duration_error(retries.backoff))


def _retry_on_ok(policy: str) -> bool:
    if policy in SUPPORTED_RETRY_ON:
        return True
    return policy.isdigit() and int(policy) in KNOWN_STATUS_CODES


def validate_fault(fault: HTTPFaultInjection, path: str, rep: Reporter) -> None:
    if fault.abort is None and fault.delay is None:
        rep.error(path, "HTTP fault injection must have an abort and/or a delay")
    if fault.abort is not None:
        _validate_abort(fault.abort, f"{path}.abort", rep)
    if fault.delay is not None:
        _validate_delay(fault.delay, f"{path}.delay", rep)


def _validate_abort(abort: Abort, path: str, rep: Reporter) -> None:
    if abort.percentage is not None:
        rep.error(f"{path}.percentage.value", percentage_error(abort.percentage.value))
    kinds = [
        name
        for name, value in (
            ("httpStatus", abort.http_status),
            ("grpcStatus", abort.grpc_status),
            ("http2Error", abort.http2_error),
        )
        if value is not None
    ]
    if len(kinds) > 1:
        rep.error(
            path, f"only one of httpStatus, grpcStatus or http2Error may be set (got {kinds})"
        )
    if not kinds:
        rep.warning(path, "abort configured, but error type not set")
    if abort.http_status is not None:
        rep.error(f"{path}.httpStatus", http_status_error(abort.http_status))
    if abort.grpc_status is not None and abort.grpc_status not in GRPC_STATUS_CODES:
        rep.error(
            f"{path}.grpcStatus",
            f"gRPC status {quote(abort.grpc_status)} is not supported. See "
            "https://github.com/grpc/grpc/blob/master/doc/statuscodes.md for a list of "
            "supported codes, for example 'NOT_FOUND'",
        )
    if abort.http2_error is not None:
        rep.error(f"{path}.http2Error", "HTTP/2 abort fault injection not supported yet")


def _validate_delay(delay: Delay, path: str, rep: Reporter) -> None:
    if delay.percentage is not None:
        rep.error(f"{path}.percentage.value", percentage_error(delay.percentage.value))
    if delay.percent is not None:
        rep.error(f"{path}.percent", int_percent_error(delay.percent))
        rep.warning(
            f"{path}.percent", 'using deprecated setting "percent", use "percentage" instead'
        )
    if delay.fixed_delay is not None:
        rep.error(f"{path}.fixedDelay", duration_error(delay.fixed_delay))
    if delay.exponential_delay is not None:
        rep.error(f"{path}.exponentialDelay", duration_error(delay.exponential_delay))
        rep.error(f"{path}.exponentialDelay", "exponentialDelay not supported yet")
    elif delay.fixed_delay is None:
        rep.warning(path, "delay configured without fixedDelay: no delay is injected")


def validate_cors(cors: CorsPolicy, path: str, rep: Reporter) -> None:
    for i, origin in enumerate(cors.allow_origins):
        origin_path = f"{path}.allowOrigins[{i}]"
        value = origin.exact or origin.prefix or origin.regex or ""
        if not value:
            rep.error(origin_path, f"'{value}' is not a valid match type for CORS allow origins")
        elif origin.regex is not None:
            rep.error(f"{origin_path}.regex", regex_error(origin.regex))
    if cors.allow_origin:
        rep.warning(
            f"{path}.allowOrigin",
            'using deprecated setting "allowOrigin", use "allowOrigins" instead',
        )
    for i, method in enumerate(cors.allow_methods):
        if method not in CORS_METHODS:
            rep.error(
                f"{path}.allowMethods[{i}]", f"{quote(method)} is not a supported HTTP method"
            )
    for field, names in (
        ("allowHeaders", cors.allow_headers),
        ("exposeHeaders", cors.expose_headers),
    ):
        for i, name in enumerate(names):
            rep.error(f"{path}.{field}[{i}]", cors_header_name_error(name))
    if cors.max_age is not None:
        rep.error(f"{path}.maxAge", duration_error(cors.max_age))
        if abs(cors.max_age - round(cors.max_age)) > 1e-9:
            rep.error(f"{path}.maxAge", "max_age duration is accurate only to seconds precision")
    preflights = cors.unmatched_preflights
    if preflights is not None and preflights not in UNMATCHED_PREFLIGHTS:
        rep.error(
            f"{path}.unmatchedPreflights",
            f"unmatchedPreflights must be one of FORWARD, IGNORE or UNSPECIFIED (got {preflights})",
        )
