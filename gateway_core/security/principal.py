"""Data path: what request authentication learned about a request (``Exchange.auth``).

The authentication filter fills it; authorization, claim-based route matching and the access
log read it. Istio's names: the request principal is ``<iss>/<sub>``, the presenter is the
``azp`` claim, the audiences are the ``aud`` claim as a tuple.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestAuth:
    """One verified token's facts. A request without a token has ``Exchange.auth is None``."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    audiences: tuple[str, ...] = ()
    presenter: str = ""

    @property
    def principal(self) -> str:
        """Istio's ``request.auth.principal`` / ``requestPrincipals`` value: ``iss/sub``."""
        return f"{self.issuer}/{self.subject}"
