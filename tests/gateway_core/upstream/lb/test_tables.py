"""Hash tables built off the event loop (gateway_core/upstream/lb/tables.py): while a new
Maglev or ring table is built elsewhere, the level serves from its previous table without ever
returning a host that left, then the new table is swapped in by one update."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable

import pytest
from lb_testkit import make_host, make_hosts, random_keys

from gateway_core.snapshot import LbKind, LbPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext, LoadBalancer
from gateway_core.upstream.lb.priority import PriorityLoadBalancer
from gateway_core.upstream.lb.tables import Built, thread_offload

KINDS = [LbKind.MAGLEV, LbKind.RING_HASH]


class QueuedOffload:
    """Builds wait here until the test runs them: events in, events out."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[[], LoadBalancer], Built]] = []

    def __call__(self, build: Callable[[], LoadBalancer], done: Built) -> None:
        self.jobs.append((build, done))

    def run_all(self) -> None:
        jobs, self.jobs = self.jobs, []
        for build, done in jobs:
            done(build())


def _balancer(kind: LbKind, hosts: list[Host], offload: object = None) -> PriorityLoadBalancer:
    return PriorityLoadBalancer(
        LbPolicy(kind=kind),
        hosts,
        panic_threshold=0,
        locality_weighted=False,
        rng=random.Random(0),
        offload=offload,  # type: ignore[arg-type]
    )


def _owners(lb: PriorityLoadBalancer, keys: list[int]) -> list[str]:
    out = []
    for key in keys:
        host = lb.choose_host(LbContext(hash_key=key))
        assert host is not None
        out.append(host.address)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_a_health_change_builds_elsewhere_and_serves_from_the_old_table(kind: LbKind) -> None:
    """An ejection asks the offload for a new table instead of building it in place. Until it
    arrives, keys keep their hosts, and keys of the ejected host move to healthy hosts only.
    After it arrives, every key maps exactly as a balancer built from scratch maps it."""
    hosts = make_hosts(6)
    offload = QueuedOffload()
    lb = _balancer(kind, hosts, offload)
    assert offload.jobs == []  # the first table is built where the cluster is created
    keys = random_keys(2000)
    before = _owners(lb, keys)

    hosts[2].ejected = True
    lb.update()
    assert len(offload.jobs) == 1
    during = _owners(lb, keys)
    assert hosts[2].address not in during
    kept = [b for b, d in zip(before, during, strict=True) if b != hosts[2].address]
    assert kept == [d for b, d in zip(before, during, strict=True) if b != hosts[2].address]

    lb.update()  # another update while the build runs starts no second build
    assert len(offload.jobs) == 1

    offload.run_all()
    reference = _balancer(kind, [make_host(h.address) for h in hosts if h.healthy])
    assert _owners(lb, keys) == _owners(reference, keys)


@pytest.mark.parametrize("kind", KINDS)
def test_a_new_host_gets_keys_only_once_its_table_is_in(kind: LbKind) -> None:
    hosts = make_hosts(4)
    offload = QueuedOffload()
    lb = _balancer(kind, hosts, offload)
    keys = random_keys(2000)
    newcomer = make_host("10.0.0.99")
    lb.update([*hosts, newcomer])
    assert newcomer.address not in _owners(lb, keys)
    offload.run_all()
    assert newcomer.address in _owners(lb, keys)


def test_a_table_for_candidates_that_changed_again_is_not_used() -> None:
    """Two changes in a row: the first table arrives after the second change and is dropped;
    the second one is the one swapped in."""
    hosts = make_hosts(5)
    offload = QueuedOffload()
    lb = _balancer(LbKind.MAGLEV, hosts, offload)
    keys = random_keys(1000)
    hosts[0].ejected = True
    lb.update()
    hosts[1].ejected = True
    lb.update()
    assert len(offload.jobs) == 2
    assert {hosts[0].address, hosts[1].address}.isdisjoint(_owners(lb, keys))
    offload.run_all()
    reference = _balancer(LbKind.MAGLEV, [make_host(h.address) for h in hosts[2:]])
    assert _owners(lb, keys) == _owners(reference, keys)


def test_when_every_old_host_left_the_new_ones_answer_until_the_table_arrives() -> None:
    old = make_hosts(3)
    offload = QueuedOffload()
    lb = _balancer(LbKind.MAGLEV, old, offload)
    new = make_hosts(2, "10.1.0.")
    lb.update(new)
    assert set(_owners(lb, random_keys(200))) <= {h.address for h in new}


async def test_the_thread_offload_builds_on_another_thread_and_swaps_on_the_loop() -> None:
    """With the real offload, ``update`` returns before the table is built: the build runs on
    a worker thread while the loop keeps running, and the swap happens on the loop."""
    real = thread_offload()
    built_on: list[int] = []

    def recording(build: Callable[[], LoadBalancer], done: Built) -> None:
        def traced() -> LoadBalancer:
            built_on.append(threading.get_ident())
            return build()

        real(traced, done)

    hosts = make_hosts(8)
    lb = _balancer(LbKind.MAGLEV, hosts, recording)
    keys = random_keys(500)
    swapped_on: list[int] = []
    assert lb._tables is not None
    update = lb._tables._on_ready

    def recording_update() -> None:
        swapped_on.append(threading.get_ident())
        update()

    lb._tables._on_ready = recording_update
    hosts[3].ejected = True
    lb.update()
    assert swapped_on == []  # not built in place
    ticks = 0
    deadline = asyncio.get_running_loop().time() + 10.0
    while not swapped_on:
        assert asyncio.get_running_loop().time() < deadline, "the new table never arrived"
        await asyncio.sleep(0.001)
        ticks += 1
    assert ticks > 0  # the loop ran while the table was built
    assert built_on and built_on[0] != threading.get_ident()
    assert swapped_on == [threading.get_ident()]
    reference = _balancer(LbKind.MAGLEV, [make_host(h.address) for h in hosts if h.healthy])
    assert _owners(lb, keys) == _owners(reference, keys)
