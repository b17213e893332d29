"""Functional: Istio's own security task YAML (``../shared/istio-samples/security``) at this
gateway, with the outcomes the task docs state (the fixtures' README lists them).

The AuthorizationPolicy files are loaded unchanged, by their path, next to a gateway on a free
port. Rows without a token run through a real gateway. Rows with a token need request
authentication, which is another filter: there the compiled engine is asked directly, with the
facts the sample token carries (its payload decoded without verification, only to build the
input; its signature is not what is under test here).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway_core.compiler import compile_snapshot
from gateway_core.config.diagnostics import Diagnostics
from gateway_core.config.loader import load_resources
from gateway_core.config.validation import validate_resources
from gateway_core.security.authz import AccessFacts, AuthorizationFilter
from gateway_core.security.principal import RequestAuth
from gateway_core.snapshot import NodeInfo, frozen_labels
from tests.conftest import free_port
from tests.functional.support import capture_upstream, config, get, metric_samples
from tests.helpers import shared_path

SAMPLES = "istio-samples/security"
LABELS = {"istio": "ingressgateway"}


def sample(name: str) -> Path:
    return shared_path(f"{SAMPLES}/{name}")


def token_auth(name: str) -> RequestAuth:
    """The facts a verified sample token gives (payload decoded, signature not checked)."""
    payload = sample(name).read_text().strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    aud = claims.get("aud", ())
    return RequestAuth(
        issuer=claims["iss"],
        subject=claims["sub"],
        claims=claims,
        audiences=(aud,) if isinstance(aud, str) else tuple(aud),
        presenter=claims.get("azp", ""),
    )


def engine_for(*files: str) -> AuthorizationFilter | None:
    """The samples (with httpbin-gateway.yaml) loaded by path, validated and compiled."""
    loaded = load_resources([sample("httpbin-gateway.yaml"), *(sample(f) for f in files)])
    assert not loaded.diagnostics.errors, [str(d) for d in loaded.diagnostics.errors]
    diags = Diagnostics()
    validate_resources(loaded.resources, diags)
    assert not diags.errors, [str(d) for d in diags.errors]
    snapshot = compile_snapshot(loaded.resources, NodeInfo(labels=frozen_labels(LABELS)), diags)
    found = [f for f in snapshot.gateway_filters if isinstance(f, AuthorizationFilter)]
    return found[0] if found else None


def decide(engine: AuthorizationFilter | None, path: str, auth: RequestAuth | None) -> int:
    if engine is None:
        return 200
    facts = AccessFacts("GET", path, "httpbin.example.com", {}, 80, "10.0.0.1", "10.0.0.1")
    facts = AccessFacts(**{**_fields(facts), "auth": auth})
    return 200 if engine.decide(facts).allowed else 403


def _fields(facts: AccessFacts) -> dict[str, Any]:
    return {name: getattr(facts, name) for name in AccessFacts.__slots__}


# (policy file or None, path, token file or None, status the docs state)
TABLE = [
    (None, "/headers", None, 200),
    ("ingress-jwt-require-token.yaml", "/headers", None, 403),
    ("ingress-jwt-require-token.yaml", "/headers", "demo.jwt", 200),
    ("ingress-jwt-require-token-per-path.yaml", "/headers", None, 403),
    ("ingress-jwt-require-token-per-path.yaml", "/ip", None, 200),
    ("authz-jwt-require-principal.yaml", "/headers", "demo.jwt", 200),
    ("authz-jwt-require-principal.yaml", "/headers", None, 403),
    ("authz-jwt-require-group.yaml", "/headers", "groups-scope.jwt", 200),
    ("authz-jwt-require-group.yaml", "/headers", "demo.jwt", 403),
]


@pytest.mark.parametrize(("policy", "path", "token", "status"), TABLE)
def test_engine_gives_the_documented_outcome(
    policy: str | None, path: str, token: str | None, status: int
) -> None:
    engine = engine_for(*([policy] if policy else []))
    auth = token_auth(token) if token else None
    assert decide(engine, path, auth) == status


@pytest.mark.parametrize(
    ("policy", "path", "status"),
    [(p, path, s) for p, path, t, s in TABLE if t is None and p is not None],
)
async def test_tokenless_rows_through_a_real_gateway(
    gateway: Callable[..., Any], tmp_path: Path, policy: str, path: str, status: int
) -> None:
    async with capture_upstream() as up:
        port = free_port()
        rules = "  - route:\n    - destination: {host: httpbin.local}"
        harness = await gateway(
            config(port, rules, {"httpbin.local": [up.port]}),
            labels=LABELS,
            config_paths=(str(tmp_path / "gw0" / "config.yaml"), str(sample(policy))),
        )
        assert harness.gateway.runtime.snapshot.gateway_filters
        resp = await get(port, path, host="httpbin.example.com")
        assert resp.status == status
        if status == 403:
            assert resp.body == b"RBAC: access denied"
            assert up.requests == []
            # Denied for want of a token: counted as unauthenticated, by the deciding policy
            # (a DENY policy by name; "none" when no ALLOW policy matched).
            deciding = "istio-system/frontend-ingress" if "ingress-jwt" in policy else "none"
            samples = await metric_samples(harness.admin)
            key = ("gateway_authz_unauthenticated_total", (("policy", deciding),))
            assert samples[key] == 1
