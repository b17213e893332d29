"""Tests: AuthorizationPolicy YAML → the compiled engine, and request facts to evaluate."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from gateway_core.compiler import compile_snapshot
from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.loader import load_text
from gateway_core.config.validation import validate_resources
from gateway_core.security.authz import AccessFacts, AuthorizationFilter
from gateway_core.security.principal import RequestAuth
from gateway_core.snapshot import NodeInfo, frozen_labels

GATEWAY = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""

INGRESS_LABELS = {"istio": "ingressgateway"}


def policy(spec: str, *, name: str = "p", namespace: str = "istio-system") -> str:
    """An AuthorizationPolicy document; ``spec`` is block YAML at column 0."""
    body = textwrap.indent(textwrap.dedent(spec).strip("\n"), "  ") if spec.strip() else "  {}"
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}\n"
    )


def engine_of(*docs: str, labels: Mapping[str, str] = INGRESS_LABELS) -> AuthorizationFilter | None:
    """Load, validate and compile ``docs`` with a Gateway; the authorization filter of the
    snapshot's gateway-wide chain (None: no policy applies)."""
    loaded = load_text("---\n".join((GATEWAY, *docs)), name="case.yaml")
    assert not loaded.diagnostics.errors, [str(d) for d in loaded.diagnostics.errors]
    diags = Diagnostics()
    validate_resources(loaded.resources, diags)
    assert not diags.errors, [str(d) for d in diags.errors]
    node = NodeInfo(labels=frozen_labels(labels))
    snapshot = compile_snapshot(loaded.resources, node, diags)
    found = [f for f in snapshot.gateway_filters if isinstance(f, AuthorizationFilter)]
    assert len(found) <= 1
    return found[0] if found else None


def engine(*docs: str, labels: Mapping[str, str] = INGRESS_LABELS) -> AuthorizationFilter:
    found = engine_of(*docs, labels=labels)
    assert found is not None, "no policy applied"
    return found


def facts(**overrides: Any) -> AccessFacts:
    """A plain GET / from 10.0.0.1 to port 80, no TLS, no token, unless overridden."""
    headers = {k.lower().encode(): v.encode() for k, v in overrides.pop("headers", {}).items()}
    base: dict[str, Any] = {
        "method": "GET",
        "path": "/",
        "host": "example.com",
        "headers": headers,
        "port": 80,
        "source_ip": "10.0.0.1",
        "remote_ip": "10.0.0.1",
        "destination_ip": "10.0.0.2",
    }
    base.update(overrides)
    return AccessFacts(**base)


def token(iss: str = "issuer", sub: str = "alice", **claims: Any) -> RequestAuth:
    """The facts a verified token would give (authentication itself is not under test)."""
    aud = claims.get("aud", ())
    audiences = (aud,) if isinstance(aud, str) else tuple(aud)
    return RequestAuth(
        issuer=iss,
        subject=sub,
        claims={"iss": iss, "sub": sub, **claims},
        audiences=audiences,
        presenter=str(claims.get("azp", "")),
    )


def allowed(eng: AuthorizationFilter, **overrides: Any) -> bool:
    return eng.decide(facts(**overrides)).allowed
