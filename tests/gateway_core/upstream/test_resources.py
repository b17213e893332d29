"""Tests for gateway_core/upstream/resources.py: the cluster's circuit breakers."""

from __future__ import annotations

import pytest

from gateway_core.snapshot import UNLIMITED, PoolLimits
from gateway_core.upstream.resources import Resource, ResourceManager


def test_resource_counts_up_to_its_max_and_records_refusals() -> None:
    """``try_inc`` takes a unit while ``count < max`` and otherwise counts an overflow; ``inc``
    may go past the max on purpose; ``dec`` gives units back."""
    res = Resource(2)
    assert res.can_create() and res.remaining == 2
    assert res.try_inc() and res.try_inc()
    assert not res.can_create() and res.remaining == 0
    assert not res.try_inc() and not res.try_inc()
    assert (res.count, res.overflow) == (2, 2)
    res.inc()
    assert res.count == 3 and res.remaining == 0
    res.dec()
    res.dec_by(2)
    assert res.count == 0 and res.can_create()
    assert res.dump() == {"count": 0, "max": 2, "overflow": 2}


def test_resource_refuses_to_go_below_zero() -> None:
    """Releasing more than was taken is a bookkeeping bug, never silently absorbed."""
    res = Resource(1)
    with pytest.raises(AssertionError):
        res.dec()
    res.inc()
    with pytest.raises(AssertionError):
        res.dec_by(2)
    assert res.count == 1


def test_zero_max_refuses_everything() -> None:
    res = Resource(0)
    assert not res.can_create() and not res.try_inc() and res.overflow == 1


def test_manager_takes_its_maxima_from_the_compiled_limits() -> None:
    """One resource per Istio field; refused requests (503 UO) are pending plus request
    overflows, the figure ``gateway_upstream_rq_pending_overflow`` reports."""
    limits = PoolLimits(max_connections=3, max_pending_requests=4, max_requests=5, max_retries=6)
    rm = ResourceManager(limits)
    assert [r.max for r in (rm.connections, rm.pending_requests, rm.requests, rm.retries)] == [
        3,
        4,
        5,
        6,
    ]
    assert ResourceManager(PoolLimits()).connections.max == UNLIMITED
    rm.pending_requests.overflow, rm.requests.overflow, rm.connections.overflow = 2, 1, 7
    rm.retries.overflow = 9
    assert rm.refused_requests == 3
    dump = rm.dump()
    assert dump["priority"] == "DEFAULT"
    assert dump["connections"] == {"count": 0, "max": 3, "overflow": 7}
    assert dump["retries"] == {"count": 0, "max": 6, "overflow": 9}
