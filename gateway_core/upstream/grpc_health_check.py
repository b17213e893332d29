"""Control path: the gRPC prober of active health checks (``grpc.health.v1.Health/Check``).

Modelled on Envoy's ``grpc_health_check``: each probe is a unary ``Check`` with
``service = service_name`` and the policy's timeout as its deadline; ``SERVING`` passes, and
``NOT_SERVING``, ``SERVICE_UNKNOWN``, any RPC error (``NOT_FOUND`` for a service the server does
not know, ``UNAVAILABLE`` for a refused connection or a failed TLS handshake), a timeout or
unusable TLS material fails, with the reason as the probe's error.

Channels (grpc.aio, HTTP/2) are kept per host between rounds. A probe that gets no answer
closes its channel, so the next round connects afresh (as Envoy closes the connection of a
timed-out check) instead of waiting out grpcio's reconnect backoff. Channels of hosts that left
are closed at the start of a round, and all of them by ``close``.

TLS: with upstream TLS (the cluster's ``ClientTlsSlot``) the channel uses
``grpc.ssl_channel_credentials`` read from the slot's files -- the CA (grpcio's bundled roots
without one), and for MUTUAL the client certificate and key -- again each time the certificate
watcher has rebuilt the slot's context. The server name (``tls.sni``, else the authority or the
service host) is sent as SNI and checked against the certificate through
``grpc.ssl_target_name_override``; grpcio offers no way to skip verification or to check a
``subjectAltNames`` list instead (validation rejects / warns about those). Without TLS the
channel is plaintext HTTP/2 (h2c with prior knowledge).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2

from gateway_core.snapshot import GrpcHealthCheckPolicy, UpstreamTls, UpstreamTlsMode
from gateway_core.upstream.client_tls import ClientTlsSlot
from gateway_core.upstream.host import Host, HostKey
from gateway_core.upstream.probe import ProbeResult

_log = logging.getLogger("gateway.health_check")

CHECK_METHOD = "/grpc.health.v1.Health/Check"
_SERVING = health_pb2.HealthCheckResponse.SERVING
if TYPE_CHECKING:
    from typing import TypeAlias

    _Check: TypeAlias = grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]


def channel_credentials(tls: UpstreamTls) -> grpc.ChannelCredentials:
    """grpcio credentials for ``tls`` (reads its files: control path only)."""
    if tls.insecure_skip_verify:
        raise ValueError("grpcio cannot skip certificate verification (insecureSkipVerify)")
    root = Path(tls.ca_file).read_bytes() if tls.ca_file else None
    if tls.mode is UpstreamTlsMode.MUTUAL:
        if not tls.cert_file or not tls.key_file:
            raise ValueError("MUTUAL upstream TLS requires client_certificate and key")
        return grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=Path(tls.key_file).read_bytes(),
            certificate_chain=Path(tls.cert_file).read_bytes(),
        )
    return grpc.ssl_channel_credentials(root_certificates=root)


class GrpcProber:
    def __init__(
        self,
        check: GrpcHealthCheckPolicy,
        timeout: float,
        tls: ClientTlsSlot | None,
        server_name: str | None,
    ) -> None:
        self.check = check
        self._timeout = timeout
        self._tls = tls
        self._server_name = server_name
        self._request = health_pb2.HealthCheckRequest(service=check.service_name)
        self._channels: dict[HostKey, tuple[grpc.aio.Channel, _Check]] = {}
        self._credentials: grpc.ChannelCredentials | None = None
        self._loaded_for: ssl.SSLContext | None = None
        """The slot context whose files ``_credentials`` were read for."""
        self._tls_error = ""

    def open(self) -> None:
        """Nothing to prepare: a host's channel opens at its first probe."""

    async def begin_round(self, live: Set[HostKey]) -> None:
        for key in [k for k in self._channels if k not in live]:
            await self._drop(key)
        if self._tls is not None:
            await self._refresh_credentials(self._tls)

    async def close(self) -> None:
        for key in list(self._channels):
            await self._drop(key)

    async def probe(self, host: Host) -> ProbeResult:
        if self._tls is not None and self._credentials is None:
            return ProbeResult(False, None, self._tls_error or "upstream TLS not loaded")
        channel = self._channels.get(host.key)
        if channel is None:
            channel = self._channels[host.key] = self._open_channel(host)
        try:
            reply = await channel[1](self._request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            await self._drop(host.key)
            if exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeResult(False, None, "timeout")
            return ProbeResult(False, None, f"{exc.code().name}: {exc.details()}")
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if reply.status == _SERVING:
            return ProbeResult(True, name, None)
        return ProbeResult(False, name, f"grpc.health.v1 status {name}")

    def _open_channel(self, host: Host) -> tuple[grpc.aio.Channel, _Check]:
        address = f"[{host.address}]" if ":" in host.address else host.address
        target = f"{address}:{host.port}"
        # No transparent retries: one probe is one attempt, as for the HTTP probe.
        options: list[tuple[str, Any]] = [("grpc.enable_retries", 0)]
        authority = self.check.authority or (self._server_name if self._tls else None)
        if authority:
            options.append(("grpc.default_authority", authority))
        if self._credentials is not None:
            if self._server_name:
                options.append(("grpc.ssl_target_name_override", self._server_name))
            channel = grpc.aio.secure_channel(target, self._credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        check: _Check = channel.unary_unary(
            CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        return channel, check

    async def _drop(self, key: HostKey) -> None:
        entry = self._channels.pop(key, None)
        if entry is not None:
            await entry[0].close()

    async def _refresh_credentials(self, slot: ClientTlsSlot) -> None:
        """Read the slot's files when its context is new (first round, or the certificate
        watcher rebuilt it); channels made with the previous material are closed."""
        context = slot.context
        if context is None:
            self._tls_error = slot.error or "upstream TLS not loaded"
            return
        if context is self._loaded_for:
            return
        self._loaded_for = context
        try:
            credentials = channel_credentials(slot.spec)
        except (OSError, ValueError) as exc:
            self._tls_error = f"upstream TLS: {exc}"
            if self._credentials is not None:
                _log.warning("gRPC health check keeps its previous TLS material: %s", exc)
            return
        self._credentials, self._tls_error = credentials, ""
        await self.close()
