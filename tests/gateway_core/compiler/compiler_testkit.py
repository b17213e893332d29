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


def resources(text: str) -> Resources:
    loaded = load_text(text, "test.yaml")
    validate_resources(loaded.resources, loaded.diagnostics)
    assert loaded.diagnostics.ok, [str(d) for d in loaded.diagnostics.errors]
    return loaded.resources


def snapshot(text: str, node: NodeInfo = NODE) -> Snapshot:
    return compile_snapshot(resources(text), node)
