"""Control path: ``tier1-gateway`` — the global entry point routing to per-cluster Tier-2 gateways.

Role defaults: nothing in front of it is trusted (``xff_trusted_hops`` 0), and spill-over
between weighted cluster destinations is on (a dead cluster's share goes to the others).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_core.cli import RoleDefaults
from gateway_core.cli import main as core_main

ROLE = RoleDefaults(
    tier="tier1",
    description="Tier-1 gateway: routes each request to the right cluster's Tier-2 gateway.",
    xff_trusted_hops=0,
    spillover=True,
)


def main(argv: Sequence[str] | None = None) -> int:
    return core_main(argv, ROLE)
