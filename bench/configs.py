"""Data path (benchmark): renders the Istio YAML and nginx configurations of the measured paths.

Everything here is pure text generation so the exact configurations can be tested and quoted in
docs/benchmarks.md. Both proxies are asked to do the same work per request: keep-alive upstream
connections, X-Forwarded-For/-Proto/-Host and a request id, no response buffering to disk.
For HTTP/2 nginx listens with ``ssl http2`` and still proxies HTTP/1.1 to the pod; for gRPC it
listens with plaintext ``http2`` and uses ``grpc_pass``, while our ServiceEntry names its port
``grpc`` (protocol GRPC), which is how Istio tells a gateway to speak HTTP/2 upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BACKEND_HOST = "backend.bench.local"
TIER2_HOST = "tier2.bench.local"
# A name in the SAN list of certs/generate.py's tier2-credential, so verification is real.
TIER2_SNI = "tier2.cluster-1.lab"
TIER2_CREDENTIAL = "tier2-credential"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a proxy forwards to, whether it speaks TLS (verified against ``ca_file``), and
    whether it is a gRPC server (HTTP/2 upstream)."""

    port: int
    tls: bool = False
    ca_file: str = ""
    grpc: bool = False


def istio_gateway(
    listen_port: int, upstream: Upstream, *, https_credential: str = "", host: str = ""
) -> str:
    """One gateway: a Gateway server on ``listen_port`` (HTTPS when ``https_credential`` is
    set), a catch-all VirtualService, and a STATIC ServiceEntry for the single upstream,
    plus a DestinationRule originating TLS when the upstream is TLS."""
    upstream_host = host or BACKEND_HOST
    protocol = "GRPC" if upstream.grpc else "HTTPS" if upstream.tls else "HTTP"
    port_name = protocol.lower()
    docs = [
        _gateway(listen_port, https_credential),
        f"""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bench}}
spec:
  hosts: ["*"]
  gateways: [bench]
  http:
  - route:
    - destination: {{host: {upstream_host}, port: {{number: 80}}}}
""",
        f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: upstream}}
spec:
  hosts: [{upstream_host}]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: {port_name}, protocol: {protocol}}}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {{{port_name}: {upstream.port}}}
""",
    ]
    if upstream.tls:
        docs.append(
            f"""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: upstream}}
spec:
  host: {upstream_host}
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: {upstream.ca_file}, sni: {TIER2_SNI}}}
"""
        )
    return "---\n".join(docs)


def _gateway(listen_port: int, https_credential: str) -> str:
    protocol = "HTTPS" if https_credential else "HTTP"
    tls = (
        f"\n    tls: {{mode: SIMPLE, credentialName: {https_credential}}}"
        if https_credential
        else ""
    )
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bench}}
spec:
  servers:
  - port: {{number: {listen_port}, name: {protocol.lower()}, protocol: {protocol}}}
    hosts: ["*"]{tls}
"""


def _nginx_common(workdir: Path, name: str, *, run_as_root: bool, workers: int = 1) -> str:
    # Directly under workdir: nginx creates the last path component itself, not its parents.
    temps = "\n".join(
        f"  {kind}_temp_path {workdir}/nginx-{name}-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if run_as_root else ""
    return f"""{user}worker_processes {workers};
daemon off;
pid {workdir}/nginx-{name}.pid;
error_log {workdir}/nginx-{name}.error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
{temps}
"""


def nginx_backend(workdir: Path, port: int, *, run_as_root: bool) -> str:
    """The "pod": one worker answering ``200 ok`` (the method of the performance baseline)."""
    return (
        _nginx_common(workdir, "backend", run_as_root=run_as_root)
        + f"""  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ return 200 "ok"; }}
  }}
}}
"""
    )


def nginx_proxy(
    workdir: Path,
    name: str,
    listen_port: int,
    upstream: Upstream,
    *,
    server_cert: tuple[str, str] | None = None,
    access_log: str | None = None,
    http2: bool = False,
    run_as_root: bool,
    workers: int = 1,
) -> str:
    """A reverse proxy (``workers`` worker processes, one by default; several listen with
    ``reuseport``, as our workers do) with a keep-alive upstream pool; ``server_cert`` (cert, key)
    makes it listen with TLS, ``upstream.tls`` makes it originate verified TLS with session
    reuse (nginx's default ``proxy_ssl_session_reuse on``, stated explicitly). ``access_log``
    writes nginx's combined log there, buffered (64 KiB, flushed every 50 ms) like ours.
    ``http2`` (with ``server_cert``) offers ALPN h2 to clients (nginx 1.22: ``listen ... ssl
    http2``); the upstream side stays HTTP/1.1 with keep-alive."""
    log = f"    access_log {access_log} combined buffer=64k flush=50ms;\n" if access_log else ""
    listen = f"127.0.0.1:{listen_port} backlog=4096" + (" reuseport" if workers > 1 else "")
    ssl_server = ""
    if server_cert is not None:
        listen += " ssl"
        ssl_server = _ssl_server(name, server_cert)
    if http2:
        listen += " http2"
    scheme = "https" if upstream.tls else "http"
    ssl_client = ""
    if upstream.tls:
        ssl_client = f"""      proxy_ssl_session_reuse on;
      proxy_ssl_server_name on;
      proxy_ssl_name {TIER2_SNI};
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {upstream.ca_file};
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
"""
    return (
        _nginx_common(workdir, name, run_as_root=run_as_root, workers=workers)
        + f"""  upstream bench_{name} {{
    server 127.0.0.1:{upstream.port};
    keepalive 128;
  }}
  server {{
    listen {listen};
{log}{ssl_server}    location / {{
      proxy_pass {scheme}://bench_{name};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Request-Id $request_id;
{ssl_client}    }}
  }}
}}
"""
    )


def _ssl_server(name: str, server_cert: tuple[str, str]) -> str:
    return f"""    ssl_certificate {server_cert[0]};
    ssl_certificate_key {server_cert[1]};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench_{name}:1m;
"""


def nginx_grpc_proxy(
    workdir: Path, name: str, listen_port: int, upstream_port: int, *, run_as_root: bool
) -> str:
    """A one-worker gRPC proxy: plaintext HTTP/2 (h2c with prior knowledge) in, ``grpc_pass``
    out to a keep-alive pool, with the same forwarding headers as the HTTP proxies. nginx
    sends each call on its own upstream HTTP/2 connection, taken from and returned to the
    pool; it does not multiplex calls upstream."""
    return (
        _nginx_common(workdir, name, run_as_root=run_as_root)
        + f"""  upstream bench_{name} {{
    server 127.0.0.1:{upstream_port};
    keepalive 128;
  }}
  server {{
    listen 127.0.0.1:{listen_port} backlog=4096 http2;
    location / {{
      grpc_pass grpc://bench_{name};
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      grpc_set_header X-Forwarded-Proto $scheme;
      grpc_set_header X-Forwarded-Host $http_host;
      grpc_set_header X-Request-Id $request_id;
    }}
  }}
}}
"""
    )
