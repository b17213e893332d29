"""Control path: ``tier2-gateway`` — a cluster's ingress gateway (TLS termination, local pods).

Role defaults: it sits behind a Tier-1 gateway, so one hop of X-Forwarded-* is trusted, and it
keeps Istio's behaviour for weighted destinations (no spill-over unless asked for).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_core.cli import RoleDefaults
from gateway_core.cli import main as core_main

ROLE = RoleDefaults(
    tier="tier2",
    description="Tier-2 gateway: a cluster's ingress gateway for local pods.",
    xff_trusted_hops=1,
    spillover=False,
)


def main(argv: Sequence[str] | None = None) -> int:
    return core_main(argv, ROLE)
