"""Helpers for compiler tests: YAML text → validated resources → snapshot."""

from __future__ import annotations

from gateway_core.compiler import compile_snapshot
from gateway_core.config.loader import load_text
from gateway_core.config.resources import Resources
from gateway_core.config.validation import validate_resources
from gateway_core.snapshot import Locality, NodeInfo, Snapshot

NODE = NodeInfo(tier="tier2", locality=Locality("us-west1", "us-west1-a"), cert_dir="/certs")

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""


def https_gateway(
    tls: str, *, name: str = "gw", port: int = 443, host: str = "a.example.com"
) -> str:
    """A Gateway with one HTTPS server; ``tls`` is the server's ``tls`` block (flow style)."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  servers:
  - port: {{number: {port}, name: https, protocol: HTTPS}}
    hosts: [{host}]
    tls: {tls}
"""


def virtual_service(rules: str, *, namespace: str = "default", gateway: str = "gw") -> str:
    """VirtualService ``vs`` for every host of ``gateway``; ``rules`` are its ``http`` items
    (indented by two spaces)."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs, namespace: {namespace}}}
spec:
  hosts: ["*"]
  gateways: [{gateway}]
  http:
{rules}
"""


def resources(text: str) -> Resources:
    loaded = load_text(text, "test.yaml")
    validate_resources(loaded.resources, loaded.diagnostics)
    assert loaded.diagnostics.ok, [str(d) for d in loaded.diagnostics.errors]
    return loaded.resources


def snapshot(text: str, node: NodeInfo = NODE) -> Snapshot:
    return compile_snapshot(resources(text), node)
