"""Control path: semantic checks of one ``Gateway`` (Istio ``ValidateGateway``).

This gateway terminates HTTP and HTTPS only: servers that would need raw TCP/TLS proxying
(TCP, TLS, MONGO, PASSTHROUGH, AUTO_PASSTHROUGH) or a mesh identity (ISTIO_MUTUAL) are
rejected instead of being silently dropped, and HTTP/2-flavoured protocols are accepted but
served as HTTP/1.1.
"""

from __future__ import annotations

from gateway_core.config.gateway import (
    GatewaySpec,
    Server,
    ServerTLSMode,
    ServerTLSSettings,
    TLSProtocol,
)
from gateway_core.config.resources import Resource
from gateway_core.config.validation._common import (
    UNIX_PREFIX,
    Reporter,
    go_list,
    is_dns1123_label,
    is_ip,
    partial_wildcard_error,
    port_error,
    quote,
    unix_address_error,
    wildcard_domain_error,
)

HTTP_PROTOCOLS = frozenset({"HTTP"})
H2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})
"""Plaintext servers like HTTP: every plaintext listener takes HTTP/1.1 and h2c."""
TLS_PROTOCOLS = frozenset({"HTTPS", "TLS"})
UNSUPPORTED_PROTOCOLS = frozenset({"TCP", "TLS", "MONGO", "REDIS", "MYSQL", "UDP"})
KNOWN_PROTOCOLS = HTTP_PROTOCOLS | H2_PROTOCOLS | TLS_PROTOCOLS | UNSUPPORTED_PROTOCOLS

VALID_CIPHER_SUITES = frozenset(
    {
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
    }
)
_TLS_ORDER = {
    TLSProtocol.TLSV1_0: 0,
    TLSProtocol.TLSV1_1: 1,
    TLSProtocol.TLSV1_2: 2,
    TLSProtocol.TLSV1_3: 3,
}
_UNSUPPORTED_MODES = {
    ServerTLSMode.PASSTHROUGH: "it forwards TLS without terminating it",
    ServerTLSMode.AUTO_PASSTHROUGH: "it forwards TLS without terminating it",
    ServerTLSMode.ISTIO_MUTUAL: "it needs an Istio mesh identity",
}


def validate_gateway(res: Resource[GatewaySpec], rep: Reporter) -> None:
    if not is_dns1123_label(res.name):
        rep.error("metadata.name", f"invalid gateway name: {quote(res.name)}")
    port_names: set[str] = set()
    server_names: set[str] = set()
    for i, server in enumerate(res.spec.servers):
        path = f"spec.servers[{i}]"
        _validate_server(server, path, rep)
        if server.port.name in port_names:
            rep.error(
                f"{path}.port.name",
                f"port names in servers must be unique: duplicate name {server.port.name}",
            )
        port_names.add(server.port.name)
        if server.name is not None:
            if server.name in server_names:
                rep.error(
                    f"{path}.name", f"server names must be unique: duplicate name {server.name}"
                )
            server_names.add(server.name)


def _validate_server(server: Server, path: str, rep: Reporter) -> None:
    for j, host in enumerate(server.hosts):
        for message in server_host_errors(host):
            rep.error(f"{path}.hosts[{j}]", message)
    protocol = server.port.protocol.upper()
    _validate_port(server, path, protocol, rep)
    _validate_bind(server, path, rep)
    if server.tls is not None:
        _validate_tls(server.tls, f"{path}.tls", rep)
        if server.tls.https_redirect and protocol not in HTTP_PROTOCOLS | H2_PROTOCOLS:
            rep.warning(
                f"{path}.tls.httpsRedirect",
                "tls.httpsRedirect should only be used with http servers",
            )
    _validate_protocol_tls(server, path, protocol, rep)


def server_host_errors(host: str) -> list[str]:
    """Istio ``ValidateNamespaceSlashWildcardHostname`` for gateways: ``[ns/]dnsName``."""
    out: list[str] = []
    if "/" in host:
        namespace, _, name = host.partition("/")
        if not namespace or not name:
            out.append("config namespace and dnsName in host entry cannot be empty")
        if namespace not in ("*", ".") and not is_dns1123_label(namespace):
            out.append(f"invalid namespace value {quote(namespace)} in gateway")
    else:
        name = host
    if name != "*" and "." not in name:
        out.append("short names (non FQDN) are not allowed")
    error = wildcard_domain_error(name)
    if error and not is_ip(name):
        out.append(error)
    partial = partial_wildcard_error(name)
    if partial:
        out.append(partial)
    return out


def _validate_port(server: Server, path: str, protocol: str, rep: Reporter) -> None:
    port = server.port
    if protocol not in KNOWN_PROTOCOLS:
        rep.error(
            f"{path}.port.protocol",
            f"invalid protocol {quote(port.protocol)}, supported protocols are "
            "HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP",
        )
    elif protocol in UNSUPPORTED_PROTOCOLS:
        rep.error(
            f"{path}.port.protocol",
            f"protocol {protocol} is not supported by this gateway: it serves HTTP and HTTPS only",
        )
    if port.number > 0 or not (server.bind or "").startswith(UNIX_PREFIX):
        rep.error(f"{path}.port.number", port_error(port.number))
    if port.target_port is not None and port.target_port > 0:
        rep.error(f"{path}.port.targetPort", "targetPort has no impact on Gateways")
    if not port.name:
        rep.error(f"{path}.port.name", "port name must be set")


def _validate_bind(server: Server, path: str, rep: Reporter) -> None:
    bind = server.bind
    if not bind:
        return
    if bind.startswith(UNIX_PREFIX):
        rep.error(f"{path}.bind", unix_address_error(bind.removeprefix(UNIX_PREFIX)))
        if server.port.number != 0:
            rep.error(f"{path}.port.number", "port number must be 0 for unix domain socket")
        rep.error(f"{path}.bind", "unix domain socket listeners are not supported by this gateway")
    elif not is_ip(bind):
        rep.error(f"{path}.bind", f"{bind} is not a valid IP")


def _validate_protocol_tls(server: Server, path: str, protocol: str, rep: Reporter) -> None:
    tls = server.tls
    if protocol in TLS_PROTOCOLS:
        if tls is None:
            rep.error(f"{path}.tls", "server must have TLS settings for HTTPS/TLS protocols")
        elif protocol == "HTTPS" and tls.mode in _UNSUPPORTED_MODES:
            _report_unsupported_mode(tls, path, rep)
        return
    if tls is None:
        return
    if protocol in HTTP_PROTOCOLS | H2_PROTOCOLS:
        passthrough = tls.mode in (ServerTLSMode.PASSTHROUGH, ServerTLSMode.AUTO_PASSTHROUGH)
        if not passthrough or _certificate_fields(tls):
            rep.error(
                f"{path}.tls",
                "server cannot have TLS settings for plain text HTTP ports "
                "(only httpsRedirect is allowed)",
            )
    else:
        rep.error(f"{path}.tls", "server cannot have TLS settings for non HTTPS/TLS ports")


def _report_unsupported_mode(tls: ServerTLSSettings, path: str, rep: Reporter) -> None:
    mode = tls.mode.value
    why = _UNSUPPORTED_MODES[tls.mode]
    message = f"TLS mode {mode} is not supported by this gateway: {why}"
    if "mode" not in tls.model_fields_set:
        message = (
            f"tls.mode defaults to {mode}, which is not supported by this gateway: {why}; "
            "set mode: SIMPLE or MUTUAL"
        )
    rep.error(f"{path}.tls.mode", message)


def _certificate_fields(tls: ServerTLSSettings) -> list[str]:
    fields = {
        "serverCertificate": tls.server_certificate,
        "privateKey": tls.private_key,
        "caCertificates": tls.ca_certificates,
        "caCrl": tls.ca_crl,
        "credentialName": tls.credential_name,
        "credentialNames": tls.credential_names,
        "tlsCertificates": tls.tls_certificates,
        "caCertCredentialName": tls.ca_cert_credential_name,
    }
    return [name for name, value in fields.items() if value]


def _validate_tls(tls: ServerTLSSettings, path: str, rep: Reporter) -> None:
    """Istio ``validateTLSOptions`` plus protocol-version ordering."""
    _validate_versions(tls, path, rep)
    _validate_ciphers(tls, path, rep)
    if tls.mode is ServerTLSMode.ISTIO_MUTUAL:
        for field in _certificate_fields(tls):
            rep.error(f"{path}.{field}", f"ISTIO_MUTUAL TLS cannot have associated {field}")
        return
    if tls.mode in (ServerTLSMode.PASSTHROUGH, ServerTLSMode.AUTO_PASSTHROUGH):
        if _certificate_fields(tls):
            rep.warning(
                path, f"{tls.mode.value} mode does not use certificates, they will be ignored"
            )
        return
    sources = _certificate_sources(tls)
    if len(sources) > 1:
        rep.error(
            path,
            "only one of credential_name, credential_names, server_certificate/private_key, "
            f"tls_certificates should be specified (got {', '.join(sources)})",
        )
    _validate_certificates(tls, path, rep)
    if tls.ca_crl:
        if tls.credential_name:
            rep.error(
                f"{path}.caCrl",
                "CRL is not supported with credentialName. "
                "CRL has to be specified in the credential",
            )
        if tls.mode is ServerTLSMode.SIMPLE:
            rep.error(f"{path}.caCrl", "CRL is not supported with SIMPLE TLS")


def _certificate_sources(tls: ServerTLSSettings) -> list[str]:
    sources = []
    if tls.server_certificate and tls.private_key:
        sources.append("serverCertificate/privateKey")
    if tls.credential_name:
        sources.append("credentialName")
    if tls.credential_names:
        sources.append("credentialNames")
    if tls.tls_certificates:
        sources.append("tlsCertificates")
    return sources


def _validate_certificates(tls: ServerTLSSettings, path: str, rep: Reporter) -> None:
    if tls.credential_name or tls.credential_names:
        return
    mutual = tls.mode in (ServerTLSMode.MUTUAL, ServerTLSMode.OPTIONAL_MUTUAL)
    prefix = "MUTUAL TLS" if mutual else "SIMPLE TLS"
    if mutual and not tls.ca_certificates:
        rep.error(f"{path}.caCertificates", f"{prefix} requires a client CA bundle")
    if tls.tls_certificates:
        if len(tls.tls_certificates) > 2:
            rep.warning(
                f"{path}.tlsCertificates", f"{prefix} can support up to 2 server certificates"
            )
        for k, cert in enumerate(tls.tls_certificates):
            base = f"{path}.tlsCertificates[{k}]"
            if not cert.server_certificate:
                rep.error(f"{base}.serverCertificate", f"{prefix} requires a server certificate")
            if not cert.private_key:
                rep.error(f"{base}.privateKey", f"{prefix} requires a private key")
        return
    if not tls.server_certificate:
        rep.error(f"{path}.serverCertificate", f"{prefix} requires a server certificate")
    if not tls.private_key:
        rep.error(f"{path}.privateKey", f"{prefix} requires a private key")


def _validate_versions(tls: ServerTLSSettings, path: str, rep: Reporter) -> None:
    low, high = tls.min_protocol_version, tls.max_protocol_version
    if low in (TLSProtocol.TLSV1_0, TLSProtocol.TLSV1_1):
        message = f"minProtocolVersion {low.value} is below TLSV1_2, which is insecure"
        if not tls.cipher_suites:
            message = (
                "TLS version below TLSV1_2 require setting compatible ciphers as by default "
                "they no longer include compatible ciphers."
            )
        rep.warning(f"{path}.minProtocolVersion", message)
    if high in (TLSProtocol.TLSV1_0, TLSProtocol.TLSV1_1):
        rep.warning(
            f"{path}.maxProtocolVersion",
            f"maxProtocolVersion {high.value} is below TLSV1_2, which is insecure",
        )
    if low in _TLS_ORDER and high in _TLS_ORDER and _TLS_ORDER[low] > _TLS_ORDER[high]:
        rep.error(
            f"{path}.minProtocolVersion",
            f"minProtocolVersion {low.value} is higher than maxProtocolVersion {high.value}",
        )


def _validate_ciphers(tls: ServerTLSSettings, path: str, rep: Reporter) -> None:
    invalid: set[str] = set()
    seen: set[str] = set()
    duplicate: set[str] = set()
    for suite in tls.cipher_suites:
        if suite not in VALID_CIPHER_SUITES:
            invalid.add(suite)
        elif suite in seen:
            duplicate.add(suite)
        seen.add(suite)
    if invalid:
        rep.warning(
            f"{path}.cipherSuites", f"ignoring invalid cipher suites: {go_list(sorted(invalid))}"
        )
    if duplicate:
        rep.warning(
            f"{path}.cipherSuites",
            f"ignoring duplicate cipher suites: {go_list(sorted(duplicate))}",
        )
