"""DNS discovery against a real LabDnsServer on loopback, with a FakeClock driving refreshes."""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from gateway_core.snapshot import ClusterSpec, Discovery, EndpointSpec, Locality, frozen_labels
from gateway_core.upstream.discovery import (
    DnsDiscovery,
    DnsError,
    DnsResolver,
    hosts_from_static,
    parse_hosts,
)
from gateway_core.upstream.host import Host
from gateway_core.utils.clock import FakeClock, MonotonicClock
from gateway_lab.dns_server import LabDnsServer

LOG = logging.getLogger("test.discovery")
EP = EndpointSpec(
    "details.lab",
    9080,
    weight=3,
    locality=Locality("us-west1", "us-west1-a"),
    labels=frozen_labels({"version": "v1"}),
    priority=1,
    locality_weight=20,
)


def cluster(*endpoints: EndpointSpec, discovery: Discovery = Discovery.DNS) -> ClusterSpec:
    return ClusterSpec(
        key="outbound|9080||details.lab",
        service_host="details.lab",
        port=9080,
        subset=None,
        discovery=discovery,
        endpoints=endpoints or (EP,),
        dns_refresh_min=5.0,
        dns_refresh_max=300.0,
    )


class Recorder:
    def __init__(self) -> None:
        self.updates: list[list[Host]] = []

    def __call__(self, hosts: list[Host]) -> None:
        self.updates.append(hosts)

    @property
    def keys(self) -> list[tuple[str, int]]:
        return [h.key for h in self.updates[-1]]


@pytest.fixture
async def dns_server() -> AsyncIterator[tuple[LabDnsServer, DnsResolver]]:
    server = LabDnsServer({"details.lab": ["10.0.0.1", "10.0.0.2"]}, ttl=30)
    host, port = await server.start()
    yield server, DnsResolver([(host, port)], timeout=1.0, hosts_file=None)
    server.stop()


def discovery_for(
    spec: ClusterSpec, resolver: DnsResolver, clock: FakeClock
) -> tuple[DnsDiscovery, Recorder]:
    recorder = Recorder()
    return DnsDiscovery(spec, resolver, clock, recorder, LOG), recorder


async def test_every_record_becomes_a_host_inheriting_endpoint_attributes(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """Each A/AAAA record is a host with the endpoint's weight, locality, labels and priority."""
    server, resolver = dns_server
    server.set("details.lab", ["10.0.0.1", "10.0.0.2", "fd00::7"])
    disc, rec = discovery_for(cluster(), resolver, FakeClock())
    assert await disc.refresh_once() is True
    assert rec.keys == [("10.0.0.1", 9080), ("10.0.0.2", 9080), ("fd00::7", 9080)]
    for host in rec.updates[0]:
        assert (host.weight, host.priority, host.locality_weight) == (3, 1, 20)
        assert host.locality == Locality("us-west1", "us-west1-a")
        assert dict(host.labels) == {"version": "v1"}
        assert host.hostname == "details.lab"


async def test_added_and_removed_records_update_hosts_and_keep_survivors(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """A new record adds a host, a removed one drops it, and survivors stay the same object."""
    server, resolver = dns_server
    clock = FakeClock()
    disc, rec = discovery_for(cluster(), resolver, clock)
    await disc.refresh_once()
    survivor = rec.updates[0][1]
    survivor.ejected = True
    survivor.active_requests = 4

    server.set("details.lab", ["10.0.0.2", "10.0.0.3"])
    clock.advance(30)
    assert await disc.refresh_once() is True
    assert rec.keys == [("10.0.0.2", 9080), ("10.0.0.3", 9080)]
    assert rec.updates[1][0] is survivor
    assert (survivor.ejected, survivor.active_requests) == (True, 4)

    clock.advance(30)
    assert await disc.refresh_once() is False
    assert len(rec.updates) == 2


async def test_ttl_is_respected_and_clamped(dns_server: tuple[LabDnsServer, DnsResolver]) -> None:
    """A name is re-queried only after its TTL, clamped to [dns_refresh_min, dns_refresh_max]."""
    server, resolver = dns_server
    clock = FakeClock()
    disc, _ = discovery_for(cluster(), resolver, clock)
    await disc.refresh_once()
    assert server.queries["details.lab"] == 2  # A and AAAA
    assert disc.next_refresh_in() == 30.0
    clock.advance(29.5)
    await disc.refresh_once()
    assert server.queries["details.lab"] == 2
    clock.advance(0.5)
    await disc.refresh_once()
    assert server.queries["details.lab"] == 4

    server.ttl = 1
    clock.advance(30)
    await disc.refresh_once()
    assert disc.next_refresh_in() == 5.0
    server.ttl = 3600
    clock.advance(5)
    await disc.refresh_once()
    assert disc.next_refresh_in() == 300.0


async def test_servfail_keeps_last_good_set_and_logs_once_per_error(
    dns_server: tuple[LabDnsServer, DnsResolver], caplog: pytest.LogCaptureFixture
) -> None:
    """DNS failures keep the hosts, log once per distinct error, and retry at refresh_min."""
    server, resolver = dns_server
    clock = FakeClock()
    disc, rec = discovery_for(cluster(), resolver, clock)
    await disc.refresh_once()
    before = disc.hosts
    server.fail = True
    with caplog.at_level(logging.INFO, logger=LOG.name):
        for _ in range(2):
            clock.advance(30)
            assert await disc.refresh_once() is False
        assert disc.next_refresh_in() == 5.0
        server.fail = False
        server.remove("details.lab")
        clock.advance(5)
        await disc.refresh_once()
        server.set("details.lab", ["10.0.0.1", "10.0.0.2"])
        clock.advance(5)
        await disc.refresh_once()
    assert disc.hosts == before
    assert all(a is b for a, b in zip(disc.hosts, before, strict=True))
    assert len(rec.updates) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'details.lab'" in warnings[0]
    assert "SERVFAIL" in warnings[0]
    assert "NXDOMAIN" in warnings[1]
    assert "keeping 2 last known addresses" in warnings[1]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == [
        "cluster outbound|9080||details.lab: DNS name details.lab resolves again: "
        "10.0.0.1, 10.0.0.2"
    ]


async def test_round_robin_uses_only_the_first_address(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """DNS_ROUND_ROBIN keeps one host: the first address of the answer."""
    server, resolver = dns_server
    clock = FakeClock()
    disc, rec = discovery_for(cluster(discovery=Discovery.DNS_ROUND_ROBIN), resolver, clock)
    await disc.refresh_once()
    assert rec.keys == [("10.0.0.1", 9080)]
    server.set("details.lab", ["10.0.0.5", "10.0.0.1"])
    clock.advance(30)
    await disc.refresh_once()
    assert rec.keys == [("10.0.0.5", 9080)]


async def test_each_endpoint_keeps_its_own_attributes(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """Two endpoint names resolve separately; an IP literal endpoint passes through."""
    server, resolver = dns_server
    server.set("remote.lab", ["10.1.0.1"])
    far = EndpointSpec("remote.lab", 8443, weight=1, priority=2, locality=Locality("eu"))
    literal = EndpointSpec("192.0.2.9", 9080, weight=7)
    disc, rec = discovery_for(cluster(EP, far, literal), resolver, FakeClock())
    await disc.refresh_once()
    by_key = {h.key: h for h in rec.updates[0]}
    assert list(by_key) == [
        ("10.0.0.1", 9080),
        ("10.0.0.2", 9080),
        ("10.1.0.1", 8443),
        ("192.0.2.9", 9080),
    ]
    assert (by_key["10.1.0.1", 8443].priority, by_key["10.1.0.1", 8443].hostname) == (
        2,
        "remote.lab",
    )
    assert (by_key["192.0.2.9", 9080].weight, by_key["192.0.2.9", 9080].hostname) == (7, None)


async def test_reload_reuses_hosts_updates_attributes_and_survives_dns_outage(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """A new spec seeded with the old hosts reuses them, even while DNS is failing."""
    server, resolver = dns_server
    clock = FakeClock()
    disc, _ = discovery_for(cluster(), resolver, clock)
    await disc.refresh_once()
    old = {h.key: h for h in disc.hosts}

    server.fail = True
    heavier = cluster(replace(EP, weight=9))
    rec2 = Recorder()
    disc2 = DnsDiscovery(heavier, resolver, clock, rec2, LOG, existing=old)
    assert await disc2.refresh_once() is True
    assert [h.key for h in rec2.updates[0]] == list(old)
    assert all(h is old[h.key] for h in rec2.updates[0])
    assert [h.weight for h in rec2.updates[0]] == [9, 9]


async def test_start_refreshes_in_the_background_until_stopped() -> None:
    """start() resolves once, then the loop picks up a changed answer after its TTL."""
    server = LabDnsServer({"details.lab": ["10.0.0.1"]}, ttl=0)
    host, port = await server.start()
    resolver = DnsResolver([(host, port)], timeout=1.0, hosts_file=None)
    spec = replace(cluster(), dns_refresh_min=0.05)
    changed = asyncio.Event()
    seen: list[list[tuple[str, int]]] = []

    def on_update(hosts: list[Host]) -> None:
        seen.append([h.key for h in hosts])
        if len(seen) > 1:
            changed.set()

    disc = DnsDiscovery(spec, resolver, MonotonicClock(), on_update, LOG)
    try:
        await disc.start()
        assert seen == [[("10.0.0.1", 9080)]]
        server.set("details.lab", ["10.0.0.1", "10.0.0.2"])
        await asyncio.wait_for(changed.wait(), 10)
    finally:
        disc.stop()
        await disc.wait_closed()
        server.stop()
    assert seen[1] == [("10.0.0.1", 9080), ("10.0.0.2", 9080)]


def test_hosts_from_static_inherits_and_reuses() -> None:
    """STATIC endpoints become hosts with their attributes; existing objects are reused."""
    spec = cluster(
        EndpointSpec("10.0.0.1", 80, weight=2, locality=Locality("r", "z")),
        EndpointSpec("10.0.0.2", 80, priority=1),
        EndpointSpec("10.0.0.1", 80, weight=5),
        discovery=Discovery.STATIC,
    )
    first = hosts_from_static(spec)
    again = hosts_from_static(spec, {h.key: h for h in first})
    assert [(h.key, h.weight, h.priority, h.hostname) for h in first] == [
        (("10.0.0.1", 80), 2, 0, None),
        (("10.0.0.2", 80), 1, 1, None),
    ]
    assert first[0].locality == Locality("r", "z")
    assert all(a is b for a, b in zip(first, again, strict=True))


async def test_resolver_short_circuits_literals_localhost_and_hosts_file(tmp_path: Path) -> None:
    """IP literals and localhost never hit DNS; /etc/hosts names are re-read when it changes."""
    hosts = tmp_path / "hosts"
    hosts.write_text("10.5.0.1 details details.default.svc  # lab\n::1 details\n")
    resolver = DnsResolver([("127.0.0.1", 9)], timeout=0.5, hosts_file=str(hosts))
    literal = await resolver.resolve("192.0.2.1")
    v6 = await resolver.resolve("[2001:db8::1]")
    local = await resolver.resolve("LOCALHOST.")
    listed = await resolver.resolve("Details")
    hosts.write_text("10.5.0.2 details\n")
    os.utime(hosts, ns=(0, 10**18))
    relisted = await resolver.resolve("details")
    assert (literal.addresses, literal.ttl) == (("192.0.2.1",), math.inf)
    assert v6.addresses == ("2001:db8::1",)
    assert (local.addresses, local.ttl) == (("127.0.0.1",), math.inf)
    assert listed.addresses == ("10.5.0.1", "::1")
    assert relisted.addresses == ("10.5.0.2",)


async def test_resolver_answers_ttl_and_raises_clear_errors(
    dns_server: tuple[LabDnsServer, DnsResolver],
) -> None:
    """DNS answers carry the record TTL; NXDOMAIN and dead servers raise DnsError naming why."""
    server, resolver = dns_server
    server.set("v6.lab", ["fd00::1"])
    both = await resolver.resolve("details.lab")
    v6 = await resolver.resolve("v6.lab")
    with pytest.raises(DnsError, match=r"cannot resolve 'nope\.lab': NXDOMAIN"):
        await resolver.resolve("nope.lab")
    server.stop()
    with pytest.raises(DnsError, match=r"cannot resolve 'details\.lab'"):
        await resolver.resolve("details.lab")
    assert (both.addresses, both.ttl) == (("10.0.0.1", "10.0.0.2"), 30.0)
    assert v6.addresses == ("fd00::1",)


def test_parse_hosts_skips_comments_and_invalid_lines() -> None:
    """Hosts parsing keeps file order, lower-cases names and ignores junk lines."""
    text = "# c\n\n10.0.0.1 A b.\nnot-an-ip x\n10.0.0.2 a\n10.0.0.1 a\n"
    assert parse_hosts(text) == {"a": ("10.0.0.1", "10.0.0.2"), "b": ("10.0.0.1",)}
