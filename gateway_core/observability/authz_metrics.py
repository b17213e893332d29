"""Observability: AuthorizationPolicy decisions per policy, counted on the data path.

``gateway_authz_requests{policy, decision}`` counts requests the authorization filter allowed or
denied, by the policy that decided (``namespace/name``; ``none`` when no policy did: allowed
because no ALLOW policy applies, or denied because none of the ALLOW policies matched).
``gateway_authz_unauthenticated{policy}`` counts the denials of requests without a verified
token where the deciding policy (for ``none``: one of the ALLOW policies) reads request
authentication (``requestPrincipals``, ``request.auth.*``): the requests a token would have
let through. ``gateway_authz_audited{policy}`` counts AUDIT policy matches. Policy names come
from the configuration, so the label set is bounded by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

NO_POLICY = "none"


class AuthzCounters:
    __slots__ = ("allowed", "audited", "denied", "unauthenticated")

    def __init__(self) -> None:
        self.allowed: dict[str, int] = {}
        self.denied: dict[str, int] = {}
        self.unauthenticated: dict[str, int] = {}
        self.audited: dict[str, int] = {}

    def record(
        self, allowed: bool, policy: str | None, unauthenticated: bool, audited: Iterable[str]
    ) -> None:
        key = policy or NO_POLICY
        counts = self.allowed if allowed else self.denied
        counts[key] = counts.get(key, 0) + 1
        if unauthenticated:
            self.unauthenticated[key] = self.unauthenticated.get(key, 0) + 1
        for name in audited:
            self.audited[name] = self.audited.get(name, 0) + 1


class AuthzCollector(Collector):
    def __init__(self, counters: AuthzCounters, tier: str) -> None:
        self._c = counters
        self._tier = tier

    def collect(self) -> Iterator[Metric]:
        c, tier = self._c, self._tier
        rq = CounterMetricFamily(
            "gateway_authz_requests",
            "Requests decided by AuthorizationPolicy, by deciding policy and decision",
            labels=["tier", "policy", "decision"],
        )
        for decision, counts in (("allowed", c.allowed), ("denied", c.denied)):
            for policy, value in sorted(counts.items()):
                rq.add_metric([tier, policy, decision], value)
        yield rq
        for name, doc, counts in (
            (
                "gateway_authz_unauthenticated",
                "Denied requests without a verified token, where the policy reads request auth",
                c.unauthenticated,
            ),
            ("gateway_authz_audited", "Requests matched by AUDIT policies", c.audited),
        ):
            fam = CounterMetricFamily(name, doc, labels=["tier", "policy"])
            for policy, value in sorted(counts.items()):
                fam.add_metric([tier, policy], value)
            yield fam
