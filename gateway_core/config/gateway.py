"""Control path: Istio ``Gateway`` (networking.istio.io, gateway.proto)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from gateway_core.config._base import ApiModel


class ServerTLSMode(StrEnum):
    PASSTHROUGH = "PASSTHROUGH"
    SIMPLE = "SIMPLE"
    MUTUAL = "MUTUAL"
    AUTO_PASSTHROUGH = "AUTO_PASSTHROUGH"
    ISTIO_MUTUAL = "ISTIO_MUTUAL"
    OPTIONAL_MUTUAL = "OPTIONAL_MUTUAL"


class TLSProtocol(StrEnum):
    TLS_AUTO = "TLS_AUTO"
    TLSV1_0 = "TLSV1_0"
    TLSV1_1 = "TLSV1_1"
    TLSV1_2 = "TLSV1_2"
    TLSV1_3 = "TLSV1_3"


class Port(ApiModel):
    """Istio ``Port``: number, protocol (HTTP, HTTPS, ...), name."""

    number: int = Field(ge=0, le=65535)
    protocol: str
    name: str
    target_port: int | None = None


class TLSCertificate(ApiModel):
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None


class ServerTLSSettings(ApiModel):
    """Istio ``ServerTLSSettings``. Default minimum protocol version is TLS 1.2."""

    https_redirect: bool = False
    mode: ServerTLSMode = Field(default=ServerTLSMode.PASSTHROUGH, strict=False)
    server_certificate: str | None = None
    private_key: str | None = None
    ca_certificates: str | None = None
    ca_crl: str | None = None
    credential_name: str | None = None
    credential_names: list[str] | None = None
    tls_certificates: list[TLSCertificate] | None = None
    ca_cert_credential_name: str | None = None
    subject_alt_names: list[str] = Field(default_factory=list)
    verify_certificate_spki: list[str] = Field(default_factory=list)
    verify_certificate_hash: list[str] = Field(default_factory=list)
    min_protocol_version: TLSProtocol = Field(default=TLSProtocol.TLS_AUTO, strict=False)
    max_protocol_version: TLSProtocol = Field(default=TLSProtocol.TLS_AUTO, strict=False)
    cipher_suites: list[str] = Field(default_factory=list)
    insecure_skip_verify: bool | None = None


class Server(ApiModel):
    """Istio ``Server``: one port with its hosts and TLS settings."""

    port: Port
    bind: str | None = None
    hosts: list[str] = Field(min_length=1)
    tls: ServerTLSSettings | None = None
    default_endpoint: str | None = None
    name: str | None = None


class GatewaySpec(ApiModel):
    servers: list[Server] = Field(min_length=1)
    selector: dict[str, str] = Field(default_factory=dict)
