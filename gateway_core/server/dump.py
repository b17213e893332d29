"""Control path: JSON views of the active snapshot and of live cluster state (admin, explain)."""

from __future__ import annotations

from typing import Any

from gateway_core.routing.actions import DirectResponseAction, RedirectAction, RouteAction
from gateway_core.routing.route_table import RouteEntry
from gateway_core.security.authz import AuthorizationFilter
from gateway_core.snapshot import ClusterSpec, Snapshot
from gateway_core.upstream.cluster import Cluster
from gateway_core.upstream.host import Host


def snapshot_dump(snapshot: Snapshot) -> dict[str, Any]:
    node = snapshot.node
    return {
        "version": snapshot.version,
        "node": {
            "tier": node.tier,
            "cluster": node.cluster_name,
            "locality": str(node.locality),
            "bind_address": node.bind_address,
            "labels": dict(node.labels),
            "gateway_id": node.gateway_id,
            "max_gateway_hops": node.max_gateway_hops,
        },
        "authorization": authorization_dump(snapshot.gateway_filters),
        "listeners": [
            {
                "name": ls.name,
                "bind": ls.bind,
                "port": ls.port,
                "protocol": ls.protocol.value,
                "servers": [
                    {
                        "name": s.name,
                        "hosts": list(s.hosts),
                        "route_table": s.route_table,
                        "tls": None
                        if s.tls is None
                        else {
                            "mode": s.tls.mode.value,
                            "cert_file": s.tls.cert_file,
                            "key_file": s.tls.key_file,
                            "ca_file": s.tls.ca_file,
                            "min_version": s.tls.min_version,
                        },
                    }
                    for s in ls.servers
                ],
            }
            for ls in snapshot.listeners
        ],
        "route_tables": {
            name: [
                {
                    "name": vh.name,
                    "domains": list(vh.domains),
                    "routes": [route_dump(r) for r in vh.routes],
                }
                for vh in table.virtual_hosts
            ]
            for name, table in snapshot.route_tables.items()
        },
        "clusters": {key: cluster_spec_dump(spec) for key, spec in snapshot.clusters.items()},
        "warnings": list(snapshot.warnings),
        "gateway_filters": [_filter_dump(f) for f in snapshot.gateway_filters],
    }


def _filter_dump(spec: object) -> dict[str, Any]:
    """A gateway-wide filter's settings, as its own ``describe()`` gives them."""
    describe = getattr(spec, "describe", None)
    return {"kind": type(spec).__name__, **(describe() if callable(describe) else {})}


def route_dump(entry: RouteEntry) -> dict[str, Any]:
    action = entry.action
    out: dict[str, Any] = {
        "name": entry.name,
        "virtual_service": entry.vs_ref,
        "rule_index": entry.rule_index,
        "match": [m.describe() for m in entry.matches],
    }
    if isinstance(action, RouteAction):
        out["route"] = [
            {"cluster": c.cluster, "weight": c.weight, "subset": c.subset} for c in action.clusters
        ]
    elif isinstance(action, RedirectAction):
        out["redirect"] = {
            "code": action.code,
            "https_redirect": action.https_redirect,
            "scheme": (action.scheme or b"").decode() or None,
            "authority": (action.authority or b"").decode() or None,
            "port": action.port,
            "uri": (action.path or b"").decode() or None,
        }
    elif isinstance(action, DirectResponseAction):
        out["direct_response"] = {"status": action.status, "body_bytes": len(action.body)}
    if entry.timeout:
        out["timeout"] = entry.timeout
    if entry.retries is not None:
        out["retries"] = {
            "attempts": entry.retries.attempts,
            "retry_on": sorted(entry.retries.retry_on),
            "retriable_status_codes": sorted(entry.retries.retriable_status_codes),
            "per_try_timeout": entry.retries.per_try_timeout,
            "backoff": entry.retries.backoff,
            "previous_hosts": entry.retries.previous_hosts,
        }
    if entry.fault is not None:
        out["fault"] = {
            "delay": entry.fault.delay,
            "delay_percent": entry.fault.delay_percent,
            "abort_status": entry.fault.abort_status,
            "abort_percent": entry.fault.abort_percent,
        }
    if entry.mirrors:
        out["mirrors"] = [{"cluster": m.cluster, "percent": m.percent} for m in entry.mirrors]
    return out


def cluster_spec_dump(spec: ClusterSpec) -> dict[str, Any]:
    return {
        "service_host": spec.service_host,
        "port": spec.port,
        "subset": spec.subset,
        "discovery": spec.discovery.value,
        "lb": spec.lb.kind.value,
        "hash_key": None if spec.lb.hash_key is None else spec.lb.hash_key.kind.value,
        "panic_threshold": spec.panic_threshold,
        "locality_failover": spec.locality.failover_enabled,
        "locality_weighted": spec.locality.locality_weighted,
        "outlier_detection": None
        if spec.outlier is None
        else {
            "consecutive_5xx": spec.outlier.consecutive_5xx,
            "consecutive_gateway": spec.outlier.consecutive_gateway,
            "interval": spec.outlier.interval,
            "base_ejection_time": spec.outlier.base_ejection_time,
            "max_ejection_percent": spec.outlier.max_ejection_percent,
            "min_health_percent": spec.outlier.min_health_percent,
        },
        "limits": {
            "max_connections": spec.limits.max_connections,
            "max_pending_requests": spec.limits.max_pending_requests,
            "max_requests": spec.limits.max_requests,
            "max_requests_per_connection": spec.limits.max_requests_per_connection,
            "connect_timeout": spec.limits.connect_timeout,
        },
        "tls": None
        if spec.tls is None
        else {"mode": spec.tls.mode.value, "sni": spec.tls.sni, "ca_file": spec.tls.ca_file},
        "health_check": _health_check_dump(spec),
        "endpoints": [
            {
                "address": ep.address,
                "port": ep.port,
                "weight": ep.weight,
                "locality": str(ep.locality),
                "priority": ep.priority,
                "locality_weight": ep.locality_weight,
                "labels": dict(ep.labels),
            }
            for ep in spec.endpoints
        ],
    }


def cluster_state_dump(cluster: Cluster) -> dict[str, Any]:
    state = cluster.lb.state()
    return {
        "key": cluster.spec.key,
        "hosts": [
            {
                "address": h.address,
                "port": h.port,
                "hostname": h.hostname,
                "weight": h.weight,
                "priority": h.priority,
                "locality": str(h.locality),
                "labels": dict(h.labels),
                "healthy": h.healthy,
                "ejected": h.ejected,
                "health_check_failed": h.hc_failed,
                "health_check": _host_health_dump(cluster, h),
                "active_requests": h.active_requests,
                "total_requests": h.total_requests,
            }
            for h in cluster.hosts
        ],
        "priorities": [
            {
                "priority": lvl.priority,
                "hosts": lvl.hosts,
                "healthy": lvl.healthy,
                "availability": lvl.availability,
                "load": lvl.load,
                "panic": lvl.panic,
                "ejected": list(lvl.ejected),
                "health_check_failed": list(lvl.hc_failed),
            }
            for lvl in state.levels
        ],
        "total_panic": state.total_panic,
        "circuit_breakers": {
            "open_connections": cluster.resources.connections.count,
            "pending_requests": cluster.resources.pending_requests.count,
            "active_requests": cluster.resources.requests.count,
            "pools": len(cluster.pools),
            **cluster.resources.dump(),
        },
    }


def _health_check_dump(spec: ClusterSpec) -> dict[str, Any] | None:
    hc = spec.health_check
    if hc is None:
        return None
    if hc.grpc is not None:
        grpc = {"service_name": hc.grpc.service_name, "authority": hc.grpc.authority}
        return {"grpc": grpc, "interval": hc.interval, "timeout": hc.timeout}
    return {"path": hc.path, "interval": hc.interval, "timeout": hc.timeout}


def _host_health_dump(cluster: Cluster, host: Host) -> dict[str, Any] | None:
    """The last active health-check observation of ``host`` (None before its first probe or
    without health checks): status (HTTP code or gRPC serving status) and why it failed."""
    state = cluster.health.health.get(host.key) if cluster.health is not None else None
    if state is None:
        return None
    return {
        "last_status": state.last_status,
        "last_error": state.last_error,
        "successes": state.successes,
        "failures": state.failures,
    }


def authorization_dump(gateway_filters: tuple[object, ...]) -> list[dict[str, Any]]:
    """The AuthorizationPolicies that apply to this gateway, in evaluation order."""
    return [
        {
            "policy": policy.name,
            "action": policy.action,
            "rules": len(policy.rules),
            "reads_request_auth": policy.uses_request_auth,
        }
        for spec in gateway_filters
        if isinstance(spec, AuthorizationFilter)
        for policy in spec.policies
    ]
