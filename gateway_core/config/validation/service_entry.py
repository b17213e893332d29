"""Control path: checks of one ``ServiceEntry`` (Istio ``ValidateServiceEntry``).

DYNAMIC_DNS (per-request DNS of a wildcard host) is not implemented by this gateway and is
reported as an error rather than serving nothing.
"""

from __future__ import annotations

from gateway_core.config.resources import Resource
from gateway_core.config.service_entry import Resolution, ServiceEntrySpec, WorkloadEntry
from gateway_core.config.validation._common import (
    UNIX_PREFIX,
    Reporter,
    export_to_errors,
    fqdn_error,
    ip_subnet_error,
    is_dns1123_label,
    is_ip,
    labels_errors,
    partial_wildcard_error,
    port_error,
    unix_address_error,
    wildcard_domain_error,
)

KNOWN_PROTOCOLS = frozenset(
    {
        "HTTP",
        "HTTPS",
        "HTTP2",
        "GRPC",
        "GRPC-WEB",
        "HTTP_PROXY",
        "TCP",
        "TLS",
        "MONGO",
        "REDIS",
        "MYSQL",
        "UDP",
    }
)
HTTP_OR_TLS_PROTOCOLS = frozenset(
    {"HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY", "TLS"}
)


def validate_service_entry(res: Resource[ServiceEntrySpec], rep: Reporter) -> None:
    spec = res.spec
    if spec.workload_selector is not None and spec.endpoints:
        rep.error(
            "spec.workloadSelector",
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        )
    _validate_hosts(spec, rep)
    _validate_addresses(spec, rep)
    port_names = _validate_ports(spec, rep)
    _validate_resolution(spec, port_names, rep)
    for i, endpoint in enumerate(spec.endpoints):
        _validate_locality(endpoint, f"spec.endpoints[{i}].locality", rep)
    if spec.resolution is not Resolution.NONE and len(spec.hosts) > 1:
        for i, port in enumerate(spec.ports):
            if (port.protocol or "").upper() not in HTTP_OR_TLS_PROTOCOLS:
                rep.error(
                    f"spec.ports[{i}]", "multiple hosts provided with non-HTTP, non-TLS ports"
                )
                break
    for message in export_to_errors(res.namespace, spec.export_to, service_entry=True):
        rep.error("spec.exportTo", message)


def _validate_hosts(spec: ServiceEntrySpec, rep: Reporter) -> None:
    for i, host in enumerate(spec.hosts):
        if host == "*":
            rep.error(f"spec.hosts[{i}]", f"invalid host {host}")
            continue
        rep.error(f"spec.hosts[{i}]", wildcard_domain_error(host))
        rep.warning(f"spec.hosts[{i}]", partial_wildcard_error(host))


def _validate_addresses(spec: ServiceEntrySpec, rep: Reporter) -> None:
    cidr = False
    for i, address in enumerate(spec.addresses):
        cidr = cidr or "/" in address
        rep.error(f"spec.addresses[{i}]", ip_subnet_error(address))
    if cidr and spec.resolution not in (Resolution.NONE, Resolution.STATIC):
        rep.error(
            "spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types"
        )


def _validate_ports(spec: ServiceEntrySpec, rep: Reporter) -> set[str]:
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in enumerate(spec.ports):
        path = f"spec.ports[{i}]"
        if port.name in names:
            rep.error(f"{path}.name", f'service entry port name "{port.name}" already defined')
        names.add(port.name)
        if port.number in numbers:
            rep.error(f"{path}.number", f"service entry port {port.number} already defined")
        numbers.add(port.number)
        if not is_dns1123_label(port.name):
            rep.error(f"{path}.name", f"invalid port name: {port.name}")
        if port.protocol and port.protocol.upper() not in KNOWN_PROTOCOLS:
            rep.error(f"{path}.protocol", f"unsupported protocol: {port.protocol}")
    return names


def _validate_resolution(spec: ServiceEntrySpec, port_names: set[str], rep: Reporter) -> None:
    resolution = spec.resolution
    if resolution is Resolution.NONE:
        if spec.endpoints:
            rep.error("spec.endpoints", "no endpoints should be provided for resolution type none")
        if spec.workload_selector is not None:
            rep.warning(
                "spec.workloadSelector",
                "workloadSelector should not be set when resolution mode is NONE",
            )
    elif resolution is Resolution.STATIC:
        if not spec.endpoints and spec.workload_selector is None:
            rep.warning(
                "spec.endpoints",
                "STATIC resolution without endpoints: the service has no endpoints and requests "
                "to it cannot be served",
            )
        for i, endpoint in enumerate(spec.endpoints):
            _validate_endpoint(endpoint, f"spec.endpoints[{i}]", port_names, rep, dns=False)
    elif resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        _validate_dns(spec, port_names, rep)
    else:
        _validate_dynamic_dns(spec, rep)


def _validate_dns(spec: ServiceEntrySpec, port_names: set[str], rep: Reporter) -> None:
    mode = spec.resolution.value
    if not spec.endpoints:
        for i, host in enumerate(spec.hosts):
            if fqdn_error(host):
                rep.error(
                    f"spec.hosts[{i}]",
                    f"hosts must be FQDN if no endpoints are provided for resolution mode {mode}",
                )
    if spec.resolution is Resolution.DNS_ROUND_ROBIN and len(spec.endpoints) > 1:
        rep.error(
            "spec.endpoints", f"there must only be 0 or 1 endpoint for resolution mode {mode}"
        )
    for i, endpoint in enumerate(spec.endpoints):
        _validate_endpoint(endpoint, f"spec.endpoints[{i}]", port_names, rep, dns=True)


def _validate_dynamic_dns(spec: ServiceEntrySpec, rep: Reporter) -> None:
    rep.error("spec.resolution", "resolution DYNAMIC_DNS is not supported by this gateway")
    for i, host in enumerate(spec.hosts):
        if not host.startswith("*."):
            rep.error(f"spec.hosts[{i}]", "DYNAMIC_DNS resolution requires wildcard hosts")
    if spec.addresses:
        rep.error("spec.addresses", "addresses are not allowed with DYNAMIC_DNS resolution")
    if spec.endpoints:
        rep.error("spec.endpoints", "endpoints are not allowed with DYNAMIC_DNS resolution")


def _validate_endpoint(
    endpoint: WorkloadEntry, path: str, port_names: set[str], rep: Reporter, *, dns: bool
) -> None:
    address = endpoint.address or ""
    if not address:
        if not endpoint.network:
            rep.error(f"{path}.address", "address is required")
            return
        rep.warning(f"{path}.address", f'address is unset with network "{endpoint.network}"')
    unix = address.startswith(UNIX_PREFIX)
    if unix:
        rep.error(f"{path}.address", unix_address_error(address.removeprefix(UNIX_PREFIX)))
        if endpoint.ports:
            rep.error(f"{path}.ports", f"unix endpoint {address} must not include ports")
        if len(port_names) != 1:
            rep.error(path, "exactly 1 service port required for unix endpoints")
    elif address and not is_ip(address):
        if not dns:
            rep.error(f"{path}.address", f'endpoint address "{address}" is not a valid IP address')
        elif fqdn_error(address):
            rep.error(
                f"{path}.address",
                f'endpoint address "{address}" is not a valid FQDN or an IP address',
            )
    for name, number in endpoint.ports.items():
        if name not in port_names:
            rep.error(
                f"{path}.ports.{name}",
                f"endpoint port {number} is not defined by the service entry",
            )
        if not is_dns1123_label(name):
            rep.error(f"{path}.ports.{name}", f"invalid port name: {name}")
        rep.error(f"{path}.ports.{name}", port_error(number))
    for message in labels_errors(endpoint.labels):
        rep.error(f"{path}.labels", message)


def _validate_locality(endpoint: WorkloadEntry, path: str, rep: Reporter) -> None:
    """``region/zone/subzone``: each part non-empty, no wildcards in an endpoint's locality."""
    locality = endpoint.locality
    if locality is None:
        return
    if any(part == "" for part in locality.split("/", 2)):
        rep.error(path, f"locality {locality} must not contain empty region/zone/subzone info")
    if "*" in locality:
        rep.error(path, f"locality {locality} must not contain '*': endpoints have one locality")
