"""Control path: which ServiceEntry and DestinationRule apply to a destination host.

Hosts are compared after ``fqdn()`` expansion, each in the namespace of the resource that
names it (``reviews`` in a VirtualService in ``default`` is ``reviews.default.svc.cluster.local``,
and is a different host from ``reviews`` in a rule of namespace ``prod``). An exact host wins
over wildcards, the longest wildcard over shorter ones (Istio ``MostSpecificHostMatch``), and
among equals the first resource in file order wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from gateway_core.config.destination_rule import DestinationRuleSpec
from gateway_core.config.hosts import fqdn, host_matches
from gateway_core.config.resources import Resource, Resources
from gateway_core.config.service_entry import ServiceEntrySpec

ResT = TypeVar("ResT", Resource[ServiceEntrySpec], Resource[DestinationRuleSpec])


def service_entry_for(
    resources: Resources, host: str, namespace: str
) -> Resource[ServiceEntrySpec] | None:
    """The ServiceEntry serving ``host`` (as named in a resource of ``namespace``), if any."""
    return _most_specific(
        resources.service_entries,
        fqdn(host, namespace),
        lambda se: [fqdn(h, se.namespace) for h in se.spec.hosts],
    )


def destination_rule_for(
    resources: Resources, host: str, namespace: str
) -> Resource[DestinationRuleSpec] | None:
    """The DestinationRule that applies to ``host``: first in file order among the most specific."""
    return _most_specific(
        resources.destination_rules,
        fqdn(host, namespace),
        lambda dr: [fqdn(dr.spec.host, dr.namespace)],
    )


def _most_specific(
    candidates: Sequence[ResT], wanted: str, hosts_of: Callable[[ResT], Iterable[str]]
) -> ResT | None:
    for res in candidates:
        if wanted in hosts_of(res):
            return res
    best: ResT | None = None
    best_len = -1
    for res in candidates:
        for pattern in hosts_of(res):
            if (
                pattern.startswith("*")
                and host_matches(pattern, wanted)
                and len(pattern) > best_len
            ):
                best, best_len = res, len(pattern)
    return best
