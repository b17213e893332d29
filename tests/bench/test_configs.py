"""Benchmark: the generated Istio YAML is valid for our gateways and nginx accepts its configs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import configs
from bench.configs import Upstream
from certs.generate import generate_lab_certs
from gateway_core.pipeline import build_snapshot
from gateway_core.settings import GatewaySettings

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


def compile_yaml(tmp_path: Path, text: str, tier: str, cert_dir: Path) -> None:
    path = tmp_path / f"{tier}.yaml"
    path.write_text(text)
    settings = GatewaySettings(tier=tier, config_paths=(str(path),), cert_dir=str(cert_dir))
    result = build_snapshot([path], settings.node())
    assert result.ok, "\n".join(str(d) for d in result.diagnostics)
    assert result.snapshot is not None


def test_single_tier2_config_compiles(tmp_path: Path) -> None:
    """Path (b): an HTTP Gateway, a catch-all VirtualService and a STATIC ServiceEntry."""
    text = configs.istio_gateway(18080, Upstream(19001))
    assert "resolution: STATIC" in text
    assert "ports: {http: 19001}" in text
    assert "DestinationRule" not in text
    compile_yaml(tmp_path, text, "tier2", tmp_path)


def test_tls_chain_configs_compile(tmp_path: Path) -> None:
    """Path (c) with TLS: Tier-2 terminates with the lab credential; Tier-1 originates SIMPLE
    TLS with the CA file and an SNI that is in the Tier-2 certificate."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    tier2 = configs.istio_gateway(18443, Upstream(19001), https_credential=configs.TIER2_CREDENTIAL)
    assert "protocol: HTTPS" in tier2
    assert "credentialName: tier2-credential" in tier2
    compile_yaml(tmp_path, tier2, "tier2", certs)
    upstream = Upstream(18443, tls=True, ca_file=str(certs / "ca.crt"))
    tier1 = configs.istio_gateway(18080, upstream, host=configs.TIER2_HOST)
    assert f"caCertificates: {certs / 'ca.crt'}" in tier1
    assert f"sni: {configs.TIER2_SNI}" in tier1
    assert "ports: {https: 18443}" in tier1
    compile_yaml(tmp_path, tier1, "tier1", certs)


def test_grpc_upstream_is_a_grpc_port(tmp_path: Path) -> None:
    """gRPC paths: the ServiceEntry port is named ``grpc`` with protocol GRPC (Istio's way of
    asking for HTTP/2 upstream), its endpoint port is keyed by that name, and it compiles."""
    text = configs.istio_gateway(18080, Upstream(19002, grpc=True))
    assert "ports: [{number: 80, name: grpc, protocol: GRPC}]" in text
    assert "ports: {grpc: 19002}" in text
    assert "protocol: HTTP}" in text  # the Gateway server: plaintext, where h2c is accepted
    assert "DestinationRule" not in text
    compile_yaml(tmp_path, text, "tier2", tmp_path)


def test_nginx_h2_and_grpc_proxies() -> None:
    """HTTP/2: nginx 1.22's ``listen ... ssl http2`` with the HTTP/1.1 keep-alive pool of
    (b). gRPC: plaintext ``http2`` and ``grpc_pass`` to a keep-alive pool, with the same
    forwarding headers."""
    h2 = configs.nginx_proxy(
        Path("/w"),
        "h2",
        18443,
        Upstream(19001),
        server_cert=("/c.crt", "/c.key"),
        http2=True,
        run_as_root=False,
    )
    assert "listen 127.0.0.1:18443 backlog=4096 ssl http2;" in h2
    for line in ("proxy_http_version 1.1;", "keepalive 128;", "keepalive_requests 1000000;"):
        assert line in h2
    grpc = configs.nginx_grpc_proxy(Path("/w"), "g", 18080, 19002, run_as_root=False)
    for line in (
        "listen 127.0.0.1:18080 backlog=4096 http2;",
        "server 127.0.0.1:19002;",
        "keepalive 128;",
        "grpc_pass grpc://bench_g;",
        "grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "grpc_set_header X-Request-Id $request_id;",
    ):
        assert line in grpc
    assert "proxy_pass" not in grpc and " ssl" not in grpc


def test_nginx_proxy_does_the_same_work() -> None:
    """The nginx proxy keeps upstream connections alive and sets the same forwarding headers."""
    text = configs.nginx_proxy(
        Path("/w"), "p", 18080, Upstream(19001, tls=True, ca_file="/ca.crt"), run_as_root=False
    )
    for line in (
        "worker_processes 1;",
        "keepalive 128;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Request-Id $request_id;",
        "proxy_pass https://bench_p;",
        "proxy_ssl_session_reuse on;",
        f"proxy_ssl_name {configs.TIER2_SNI};",
        "proxy_ssl_trusted_certificate /ca.crt;",
    ):
        assert line in text
    assert "user root;" not in text
    plain = configs.nginx_proxy(Path("/w"), "p", 18080, Upstream(19001), run_as_root=True)
    assert "proxy_pass http://bench_p;" in plain
    assert "proxy_ssl" not in plain
    assert plain.startswith("user root;\n")
    assert "access_log off;" in plain and "combined" not in plain
    logged = configs.nginx_proxy(
        Path("/w"), "p", 18080, Upstream(19001), access_log="/w/a.log", run_as_root=False
    )
    assert "access_log /w/a.log combined buffer=64k flush=50ms;" in logged


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
def test_nginx_accepts_generated_configs(tmp_path: Path) -> None:
    """``nginx -t`` accepts the backend, a TLS-terminating, TLS-originating proxy, the
    logging proxy, the ``ssl http2`` proxy and the ``grpc_pass`` proxy."""
    certs = tmp_path / "certs"
    generate_lab_certs(certs)
    cred = certs / configs.TIER2_CREDENTIAL
    root = os.geteuid() == 0
    texts = {
        "backend": configs.nginx_backend(tmp_path, 19001, run_as_root=root),
        "tls": configs.nginx_proxy(
            tmp_path,
            "tls",
            18443,
            Upstream(18444, tls=True, ca_file=str(certs / "ca.crt")),
            server_cert=(str(cred / "tls.crt"), str(cred / "tls.key")),
            run_as_root=root,
        ),
        "log": configs.nginx_proxy(
            tmp_path,
            "log",
            18445,
            Upstream(19001),
            access_log=str(tmp_path / "a.log"),
            run_as_root=root,
        ),
        "h2": configs.nginx_proxy(
            tmp_path,
            "h2",
            18446,
            Upstream(19001),
            server_cert=(str(cred / "tls.crt"), str(cred / "tls.key")),
            http2=True,
            run_as_root=root,
        ),
        "grpc": configs.nginx_grpc_proxy(tmp_path, "grpc", 18447, 19002, run_as_root=root),
    }
    for name, text in texts.items():
        conf = tmp_path / f"{name}.conf"
        conf.write_text(text)
        argv = [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(conf)]
        argv += ["-e", str(tmp_path / f"{name}.err")]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        assert "test is successful" in done.stderr
