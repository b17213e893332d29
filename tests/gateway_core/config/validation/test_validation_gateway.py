"""Per-resource Gateway rules: ports, protocols, server hosts and TLS (Istio wording)."""

from __future__ import annotations

import pytest
from validation_testkit import ERROR, WARNING, Expected, assert_diagnostics, doc, validate_text

S0 = "spec.servers[0]"


def gateway(*servers: str, name: str = "gw") -> str:
    """A Gateway whose servers are one-line flow mappings."""
    return doc("Gateway", "servers:\n" + "".join(f"- {s}\n" for s in servers), name=name)


HTTP = "{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}"


def https(tls: str, hosts: str = "[a.example.com]", name: str = "https") -> str:
    return f"{{port: {{number: 443, name: {name}, protocol: HTTPS}}, hosts: {hosts}, tls: {tls}}}"


CASES: list[tuple[str, str, list[Expected]]] = [
    ("valid-http", gateway(HTTP), []),
    (
        "valid-http-with-https-redirect",
        gateway(
            "{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], "
            "tls: {httpsRedirect: true}}"
        ),
        [],
    ),
    ("valid-https-credential", gateway(https("{mode: SIMPLE, credentialName: cred}")), []),
    (
        "valid-mutual-files",
        gateway(
            https(
                "{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, "
                "caCertificates: /ca.pem}"
            )
        ),
        [],
    ),
    (
        "https-without-tls",
        gateway("{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com]}"),
        [(ERROR, f"{S0}.tls", "server must have TLS settings for HTTPS/TLS protocols")],
    ),
    (
        "plain-http-with-certificates",
        gateway(
            "{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], "
            "tls: {httpsRedirect: true, credentialName: cred}}"
        ),
        [
            (ERROR, f"{S0}.tls", "server cannot have TLS settings for plain text HTTP ports"),
            (WARNING, f"{S0}.tls", "PASSTHROUGH mode does not use certificates"),
        ],
    ),
    (
        "simple-without-certificate",
        gateway(https("{mode: SIMPLE}")),
        [
            (ERROR, f"{S0}.tls.serverCertificate", "SIMPLE TLS requires a server certificate"),
            (ERROR, f"{S0}.tls.privateKey", "SIMPLE TLS requires a private key"),
        ],
    ),
    (
        "two-certificate-sources",
        gateway(https("{mode: SIMPLE, credentialName: c, serverCertificate: /c, privateKey: /k}")),
        [(ERROR, f"{S0}.tls", "only one of credential_name, credential_names, server_certificate")],
    ),
    (
        "mutual-without-client-ca",
        gateway(https("{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}")),
        [(ERROR, f"{S0}.tls.caCertificates", "MUTUAL TLS requires a client CA bundle")],
    ),
    (
        "target-port",
        gateway("{port: {number: 80, name: http, protocol: HTTP, targetPort: 8080}, hosts: ['*']}"),
        [(ERROR, f"{S0}.port.targetPort", "targetPort has no impact on Gateways")],
    ),
    (
        "duplicate-port-and-server-names",
        gateway(
            "{port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com], name: s}",
            "{port: {number: 81, name: http, protocol: HTTP}, hosts: [b.example.com], name: s}",
        ),
        [
            (ERROR, "spec.servers[1].port.name", "port names in servers must be unique"),
            (ERROR, "spec.servers[1].name", "server names must be unique: duplicate name s"),
        ],
    ),
    (
        "tls-1-0-warning",
        gateway(https("{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_0}")),
        [(WARNING, f"{S0}.tls.minProtocolVersion", "TLS version below TLSV1_2 require")],
    ),
    (
        "min-above-max-version",
        gateway(
            https(
                "{mode: SIMPLE, credentialName: c, minProtocolVersion: TLSV1_3, "
                "maxProtocolVersion: TLSV1_2}"
            )
        ),
        [(ERROR, f"{S0}.tls.minProtocolVersion", "TLSV1_3 is higher than maxProtocolVersion")],
    ),
    (
        "passthrough-unsupported",
        gateway(https("{mode: PASSTHROUGH}")),
        [(ERROR, f"{S0}.tls.mode", "TLS mode PASSTHROUGH is not supported by this gateway")],
    ),
    (
        "implicit-passthrough-with-credential",
        gateway(https("{credentialName: cred}")),
        [
            (ERROR, f"{S0}.tls.mode", "tls.mode defaults to PASSTHROUGH, which is not supported"),
            (WARNING, f"{S0}.tls", "PASSTHROUGH mode does not use certificates"),
        ],
    ),
    (
        "auto-passthrough-unsupported",
        gateway(https("{mode: AUTO_PASSTHROUGH}")),
        [(ERROR, f"{S0}.tls.mode", "AUTO_PASSTHROUGH is not supported by this gateway")],
    ),
    (
        "istio-mutual-unsupported",
        gateway(https("{mode: ISTIO_MUTUAL}")),
        [(ERROR, f"{S0}.tls.mode", "ISTIO_MUTUAL is not supported by this gateway")],
    ),
    (
        "tcp-and-mongo-unsupported",
        gateway(
            "{port: {number: 9000, name: tcp, protocol: TCP}, hosts: ['*']}",
            "{port: {number: 27017, name: mongo, protocol: MONGO}, hosts: ['*']}",
        ),
        [
            (ERROR, f"{S0}.port.protocol", "protocol TCP is not supported by this gateway"),
            (ERROR, "spec.servers[1].port.protocol", "protocol MONGO is not supported"),
        ],
    ),
    (
        "tls-protocol-unsupported",
        gateway(
            "{port: {number: 443, name: tls, protocol: TLS}, hosts: ['*'], "
            "tls: {mode: PASSTHROUGH}}"
        ),
        [(ERROR, f"{S0}.port.protocol", "protocol TLS is not supported by this gateway")],
    ),
    (
        "http2-and-grpc-servers-are-plaintext-http-listeners",
        gateway(
            "{port: {number: 80, name: h2, protocol: HTTP2}, hosts: ['*']}",
            "{port: {number: 81, name: grpc, protocol: GRPC}, hosts: ['*']}",
        ),
        [],
    ),
    (
        "unknown-protocol",
        gateway("{port: {number: 80, name: x, protocol: QUIC}, hosts: ['*']}"),
        [(ERROR, f"{S0}.port.protocol", 'invalid protocol "QUIC", supported protocols are')],
    ),
    (
        "port-zero",
        gateway("{port: {number: 0, name: http, protocol: HTTP}, hosts: ['*']}"),
        [(ERROR, f"{S0}.port.number", "port number 0 must be in the range 1..65535")],
    ),
    (
        "server-host-short-name-and-bad-namespace",
        gateway(
            "{port: {number: 80, name: http, protocol: HTTP}, "
            "hosts: [reviews, 'Bad_NS/a.example.com', 'ns/foo*.example.com']}"
        ),
        [
            (ERROR, f"{S0}.hosts[0]", "short names (non FQDN) are not allowed"),
            (ERROR, f"{S0}.hosts[1]", 'invalid namespace value "Bad_NS" in gateway'),
            (ERROR, f"{S0}.hosts[2]", 'invalid (label "foo*" invalid)'),
            (ERROR, f"{S0}.hosts[2]", 'partial wildcard "foo*.example.com" not allowed'),
        ],
    ),
    (
        "invalid-and-duplicate-ciphers",
        gateway(
            https(
                "{mode: SIMPLE, credentialName: c, cipherSuites: "
                "[AES128-SHA, AES128-SHA, NOT-A-CIPHER]}"
            )
        ),
        [
            (WARNING, f"{S0}.tls.cipherSuites", "ignoring invalid cipher suites: [NOT-A-CIPHER]"),
            (WARNING, f"{S0}.tls.cipherSuites", "ignoring duplicate cipher suites: [AES128-SHA]"),
        ],
    ),
    (
        "invalid-gateway-name",
        gateway(HTTP, name="My_Gateway"),
        [(ERROR, "metadata.name", 'invalid gateway name: "My_Gateway"')],
    ),
    (
        "https-redirect-on-https-server",
        gateway(https("{mode: SIMPLE, credentialName: c, httpsRedirect: true}")),
        [(WARNING, f"{S0}.tls.httpsRedirect", "should only be used with http servers")],
    ),
    (
        "bind-must-be-an-ip",
        gateway("{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], bind: localhost}"),
        [(ERROR, f"{S0}.bind", "localhost is not a valid IP")],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_gateway_rules(text: str, expected: list[Expected]) -> None:
    """Each Gateway case yields exactly the expected diagnostics, paths and severities."""
    assert_diagnostics(validate_text(text), expected)
