"""Control path: pure translation of validated resources into the data-plane ``Snapshot``.

No file or network I/O, no clock, no randomness: the same resources and node give the same
snapshot, and ``snapshot.version`` is a hash of exactly those inputs.
"""

from __future__ import annotations

import hashlib
import json
from types import MappingProxyType

from gateway_core.compiler.authorization import build_authorization
from gateway_core.compiler.clusters import ClusterCollector
from gateway_core.compiler.index import ConfigIndex
from gateway_core.compiler.listeners import build_listener_specs, plan_listeners
from gateway_core.compiler.ratelimits import gateway_rate_limits, loop_guard
from gateway_core.compiler.routes import build_route_tables
from gateway_core.compiler.security import build_jwt_filter
from gateway_core.config.diagnostics import ConfigError, Diagnostics
from gateway_core.config.resources import Resources
from gateway_core.snapshot import NodeInfo, Snapshot


def compile_snapshot(
    resources: Resources, node: NodeInfo, diagnostics: Diagnostics | None = None
) -> Snapshot:
    """Translate validated resources into the data-plane snapshot.

    Raises ``ConfigError`` (with every diagnostic) when the resources cannot be served, e.g. two
    Gateway servers claim one port with different protocols.
    """
    diags = diagnostics if diagnostics is not None else Diagnostics()
    index = ConfigIndex.build(resources)
    plans = plan_listeners(resources.gateways, node, diags)
    clusters = ClusterCollector(index)
    route_tables = build_route_tables(plans, index, node, clusters)
    # Gateway-wide filters, in order: request authentication (RequestAuthentication, which
    # fills ``Exchange.auth``) belongs first, then authorization, which reads it.
    # Envoy's order: the loop guard first (cheapest, and a loop must never reach the others),
    # then authentication (JWT), authorization, and the gateway-wide rate limits (which may key
    # on a JWT claim).
    gateway_filters: tuple[object, ...] = (
        *loop_guard(node),
        *build_jwt_filter(resources, node.labels),
        *build_authorization(resources, node, diags),
        *gateway_rate_limits(resources),
    )
    if not diags.ok:
        raise ConfigError(diags)
    return Snapshot(
        version=config_version(resources, node),
        node=node,
        listeners=build_listener_specs(plans, node),
        route_tables=MappingProxyType(route_tables),
        clusters=MappingProxyType(clusters.build(node)),
        warnings=tuple(str(d) for d in diags.warnings),
        gateway_filters=gateway_filters,
    )


def config_version(resources: Resources, node: NodeInfo) -> str:
    """Short content hash of the inputs: equal configs give equal versions."""
    digest = hashlib.sha256()
    for res in resources.all():
        doc = {
            "kind": res.kind,
            "ns": res.namespace,
            "name": res.name,
            "spec": res.spec.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        }
        digest.update(json.dumps(doc, sort_keys=True).encode())
    digest.update(
        repr(
            (
                node.tier,
                node.cluster_name,
                node.locality,
                node.bind_address,
                node.cert_dir,
                node.spillover,
                sorted(node.labels.items()),
                node.dns_refresh_min,
                node.dns_refresh_max,
                node.max_gateway_hops,
            )
        ).encode()
    )
    return digest.hexdigest()[:16]
