"""Control path: one Istio ``HTTPRoute`` → one ``RouteEntry`` (Istio ``TranslateRoute``)."""

from __future__ import annotations

import base64
import dataclasses

from gateway_core.compiler.clusters import ClusterCollector
from gateway_core.compiler.index import ConfigIndex, gateway_key
from gateway_core.compiler.listeners import BoundServer
from gateway_core.compiler.ratelimits import limits_for
from gateway_core.config.common import StringMatch
from gateway_core.config.regex import compile_regex, compile_rewrite
from gateway_core.config.resources import Resource
from gateway_core.config.security import CLAIM_PREFIX
from gateway_core.config.virtual_service import (
    GRPC_STATUS_CODES,
    CorsPolicy,
    HeaderOperations,
    HTTPFaultInjection,
    HTTPMatchRequest,
    HTTPRoute,
    VirtualServiceSpec,
)
from gateway_core.routing.actions import (
    DEFAULT_RETRY,
    Action,
    CorsSpec,
    DirectResponseAction,
    FaultSpec,
    HeaderOps,
    MirrorSpec,
    RedirectAction,
    RetrySpec,
    RewriteSpec,
    RouteAction,
    WeightedCluster,
)
from gateway_core.routing.matchers import (
    ClaimMatch,
    FieldMatch,
    RequestMatch,
    StringMatcher,
    build_string_matcher,
)
from gateway_core.routing.route_table import RouteEntry
from gateway_core.snapshot import NodeInfo

# Istio ignores these keys in ``headers``: they are pseudo-header matches with their own fields.
_RESERVED_HEADER_KEYS = frozenset({"uri", "scheme", "method", "authority"})


def translate_http_route(
    vs: Resource[VirtualServiceSpec],
    index_in_vs: int,
    rule: HTTPRoute,
    bound: BoundServer,
    index: ConfigIndex,
    node: NodeInfo,
    clusters: ClusterCollector,
) -> RouteEntry | None:
    """The route entry for ``bound``'s gateway, or None when no match block applies to it."""
    matches = _matches(rule.match, vs.namespace, bound, node)
    if rule.match and not matches:
        return None
    action = _action(rule, vs, index, clusters)
    if action is None:
        return None
    request_ops, response_ops = (
        _header_ops(rule.headers.request if rule.headers else None),
        (_header_ops(rule.headers.response if rule.headers else None)),
    )
    rewrite = _rewrite(rule, request_ops)
    name = f"{vs.namespace}/{vs.name}/http[{index_in_vs}]"
    return RouteEntry(
        name=name + (f".{rule.name}" if rule.name else ""),
        vs_ref=vs.ref,
        rule_index=index_in_vs,
        matches=matches,
        action=action,
        request_headers=_without_authority(request_ops),
        response_headers=response_ops,
        rewrite=rewrite,
        timeout=rule.timeout if rule.timeout else None,
        retries=_retries(rule, action, clusters),
        fault=_fault(rule.fault),
        mirrors=_mirrors(rule, vs, index, clusters),
        cors=_cors(rule.cors_policy),
        rate_limits=limits_for(index.rate_limits, f"{vs.namespace}/{vs.name}", rule.name or ""),
    )


def _matches(
    blocks: list[HTTPMatchRequest], namespace: str, bound: BoundServer, node: NodeInfo
) -> tuple[RequestMatch, ...]:
    out = []
    for block in blocks:
        if block.gateways and bound.gateway_key not in {
            gateway_key(g, namespace) for g in block.gateways
        }:
            continue
        if block.source_labels and any(
            node.labels.get(k) != v for k, v in block.source_labels.items()
        ):
            continue
        out.append(translate_match(block))
    return tuple(out)


def translate_match(block: HTTPMatchRequest) -> RequestMatch:
    return RequestMatch(
        name=block.name,
        uri=_string(block.uri, ignore_case=block.ignore_uri_case),
        scheme=_string(block.scheme),
        method=_string(block.method),
        authority=_string(block.authority),
        port=block.port or None,
        headers=_fields(_plain(block.headers), skip_reserved=True),
        without_headers=_fields(_plain(block.without_headers), skip_reserved=True),
        query_params=_fields(block.query_params, skip_reserved=False),
        claims=_claims(block.headers),
        without_claims=_claims(block.without_headers),
    )


def _plain(items: dict[str, StringMatch]) -> dict[str, StringMatch]:
    return {k: v for k, v in items.items() if not k.startswith(CLAIM_PREFIX)}


def _claims(items: dict[str, StringMatch]) -> tuple[ClaimMatch, ...]:
    """``@request.auth.claims.<a.b>`` keys: JWT claim matches (Istio, at gateways)."""
    return tuple(
        (
            tuple(name[len(CLAIM_PREFIX) :].split(".")),
            build_string_matcher(match.exact, match.prefix, match.regex),
        )
        for name, match in items.items()
        if name.startswith(CLAIM_PREFIX)
    )


def _string(match: StringMatch | None, *, ignore_case: bool = False) -> StringMatcher | None:
    if match is None:
        return None
    # ignoreUriCase applies to exact and prefix only, as in Istio.
    return build_string_matcher(match.exact, match.prefix, match.regex, ignore_case=ignore_case)


def _fields(items: dict[str, StringMatch], *, skip_reserved: bool) -> tuple[FieldMatch, ...]:
    out = []
    for name, match in items.items():
        if skip_reserved and name.lower() in _RESERVED_HEADER_KEYS:
            continue
        key = name.lower().encode("latin-1") if skip_reserved else name.encode("utf-8")
        out.append((key, build_string_matcher(match.exact, match.prefix, match.regex)))
    return tuple(out)


def _action(
    rule: HTTPRoute,
    vs: Resource[VirtualServiceSpec],
    index: ConfigIndex,
    clusters: ClusterCollector,
) -> Action | None:
    if rule.redirect is not None:
        r = rule.redirect
        return RedirectAction(
            code=r.redirect_code,
            scheme=r.scheme.encode() if r.scheme else None,
            authority=r.authority.encode() if r.authority else None,
            port=r.port or None,
            derive_port=r.derive_port.value if r.derive_port else None,
            path=r.uri.encode() if r.uri else None,
            prefix_rewrite=r.prefix_rewrite.encode() if r.prefix_rewrite is not None else None,
        )
    if rule.direct_response is not None:
        body = b""
        if rule.direct_response.body is not None:
            if rule.direct_response.body.string is not None:
                body = rule.direct_response.body.string.encode("utf-8")
            elif rule.direct_response.body.bytes is not None:
                body = base64.b64decode(rule.direct_response.body.bytes)
        return DirectResponseAction(rule.direct_response.status, body)
    if not rule.route:
        return None
    single = len(rule.route) == 1
    targets = []
    for dest in rule.route:
        d = dest.destination
        key, host, port = clusters.cluster_for(
            d.host, vs.namespace, d.port.number if d.port else 0, d.subset
        )
        req_ops = _header_ops(dest.headers.request if dest.headers else None)
        targets.append(
            WeightedCluster(
                cluster=key,
                weight=100 if single else dest.weight,
                host=host,
                subset=d.subset,
                port=port,
                request_headers=req_ops,
                response_headers=_header_ops(dest.headers.response if dest.headers else None),
            )
        )
    return RouteAction.build(tuple(t for t in targets if single or t.weight > 0) or tuple(targets))


def _header_ops(ops: HeaderOperations | None) -> HeaderOps | None:
    if ops is None:
        return None
    result = HeaderOps(
        set=tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in ops.set.items()),
        add=tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in ops.add.items()),
        remove=frozenset(k.lower().encode("latin-1") for k in ops.remove),
    )
    return result or None


_AUTHORITY_KEYS = (b":authority", b"host")


def _without_authority(ops: HeaderOps | None) -> HeaderOps | None:
    """``headers.request.set[host|:authority]`` is an authority rewrite (see ``_rewrite``)."""
    if ops is None:
        return None
    kept = HeaderOps(
        set=tuple(kv for kv in ops.set if kv[0] not in _AUTHORITY_KEYS),
        add=tuple(kv for kv in ops.add if kv[0] not in _AUTHORITY_KEYS),
        remove=ops.remove - set(_AUTHORITY_KEYS),
    )
    return kept or None


def _rewrite(rule: HTTPRoute, request_ops: HeaderOps | None) -> RewriteSpec | None:
    authority = None
    if request_ops is not None:
        for name, value in (*request_ops.set, *request_ops.add):
            if name in _AUTHORITY_KEYS:
                authority = value
    rw = rule.rewrite
    if rw is None and authority is None:
        return None
    regex = None
    if rw is not None and rw.uri_regex_rewrite is not None:
        spec = rw.uri_regex_rewrite
        regex = compile_rewrite(compile_regex(spec.match), spec.rewrite)
    if rw is not None and rw.authority:
        authority = rw.authority.encode("latin-1")
    return RewriteSpec(
        uri=rw.uri.encode("utf-8") if rw is not None and rw.uri else None,
        regex=regex,
        authority=authority,
    )


def _retries(rule: HTTPRoute, action: Action, clusters: ClusterCollector) -> RetrySpec:
    """Istio's ``retry.ConvertPolicy`` (1.24 and later): the default policy, then the fields
    the block sets. The ``previous_hosts`` predicate is on, except by default for a route whose
    single destination balances by consistent hash; ``retryIgnorePreviousHosts`` overrides."""
    single_hash = (
        isinstance(action, RouteAction)
        and len(rule.route) == 1
        and clusters.consistent_hash(action.clusters[0].cluster)
    )
    retry = rule.retries
    if retry is None:
        return (
            dataclasses.replace(DEFAULT_RETRY, previous_hosts=False)
            if single_hash
            else DEFAULT_RETRY
        )
    if retry.attempts == 0:
        return RetrySpec(attempts=0)
    policies, codes = DEFAULT_RETRY.retry_on, DEFAULT_RETRY.retriable_status_codes
    if retry.retry_on:
        names: set[str] = set()
        numbers: set[int] = set()
        for item in (part.strip() for part in retry.retry_on.split(",")):
            if item.isdigit():
                numbers.add(int(item))
                names.add("retriable-status-codes")
            elif item:
                names.add(item)
        # Only the codes listed: ``retriable-status-codes`` alone retries nothing (Envoy).
        policies, codes = frozenset(names), frozenset(numbers)
    previous = retry.retry_ignore_previous_hosts
    return RetrySpec(
        attempts=retry.attempts,
        per_try_timeout=retry.per_try_timeout,
        retry_on=policies,
        retriable_status_codes=codes,
        backoff=retry.backoff or DEFAULT_RETRY.backoff,
        previous_hosts=(not single_hash) if previous is None else previous,
    )


def _fault(fault: HTTPFaultInjection | None) -> FaultSpec | None:
    if fault is None:
        return None
    delay = fault.delay
    abort = fault.abort
    delay_pct = 0.0
    if delay is not None:
        delay_pct = delay.percentage.value if delay.percentage else float(delay.percent or 0)
    return FaultSpec(
        delay=delay.fixed_delay if delay is not None else None,
        delay_percent=delay_pct,
        abort_status=abort.http_status if abort is not None else None,
        abort_grpc_status=(
            GRPC_STATUS_CODES[abort.grpc_status]
            if abort is not None and abort.grpc_status is not None and abort.http_status is None
            else None
        ),
        abort_percent=(abort.percentage.value if abort and abort.percentage else 0.0),
    )


def _mirrors(
    rule: HTTPRoute,
    vs: Resource[VirtualServiceSpec],
    index: ConfigIndex,
    clusters: ClusterCollector,
) -> tuple[MirrorSpec, ...]:
    out = []
    if rule.mirror is not None:
        if rule.mirror_percentage is not None:
            pct = rule.mirror_percentage.value
        elif rule.mirror_percent is not None:
            pct = float(rule.mirror_percent)
        else:
            pct = 100.0
        m = rule.mirror
        key, _, _ = clusters.cluster_for(
            m.host, vs.namespace, m.port.number if m.port else 0, m.subset
        )
        out.append(MirrorSpec(key, pct))
    for policy in rule.mirrors:
        m = policy.destination
        key, _, _ = clusters.cluster_for(
            m.host, vs.namespace, m.port.number if m.port else 0, m.subset
        )
        out.append(MirrorSpec(key, policy.percentage.value if policy.percentage else 100.0))
    return tuple(out)


def _cors(policy: CorsPolicy | None) -> CorsSpec | None:
    if policy is None:
        return None
    origins: list[object] = [
        build_string_matcher(o.exact, o.prefix, o.regex) for o in policy.allow_origins
    ]
    origins.extend(build_string_matcher(o, None, None) for o in policy.allow_origin)
    return CorsSpec(
        allow_origins=tuple(origins),
        allow_methods=",".join(policy.allow_methods).encode(),
        allow_headers=",".join(policy.allow_headers).encode(),
        expose_headers=",".join(policy.expose_headers).encode(),
        max_age=str(int(policy.max_age)).encode() if policy.max_age is not None else b"",
        allow_credentials=bool(policy.allow_credentials),
    )
