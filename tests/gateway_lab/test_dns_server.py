"""Tests for the lab's authoritative DNS server, queried over real loopback UDP/TCP."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.asyncresolver
import dns.flags
import dns.message
import dns.nameserver
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from gateway_lab.dns_server import LabDnsServer, load_zone, main


@dataclass
class Lab:
    server: LabDnsServer
    host: str
    port: int
    resolver: dns.asyncresolver.Resolver

    async def addresses(self, name: str, rdtype: str = "A") -> list[str]:
        answer = await self.resolver.resolve(name, rdtype)
        return [rd.to_text() for rd in answer]

    async def udp(self, message: dns.message.Message) -> dns.message.Message:
        return await dns.asyncquery.udp(message, self.host, port=self.port, timeout=2)


def resolver_for(host: str, port: int) -> dns.asyncresolver.Resolver:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
    resolver.lifetime = 2.0
    return resolver


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    server = LabDnsServer(
        {"details.bookinfo.lab": ["10.0.0.1", "10.0.0.2", "fd00::1"], "v6only.lab": ["::1"]},
        ttl=7,
    )
    host, port = await server.start()
    yield Lab(server, host, port, resolver_for(host, port))
    server.stop()


async def test_a_and_aaaa_answers_keep_order_and_ttl(lab: Lab) -> None:
    """A and AAAA records come back in configured order with the server TTL."""
    answer = await lab.resolver.resolve("details.bookinfo.lab", "A")
    assert [rd.to_text() for rd in answer] == ["10.0.0.1", "10.0.0.2"]
    assert answer.rrset is not None
    assert answer.rrset.ttl == 7
    assert await lab.addresses("details.bookinfo.lab", "AAAA") == ["fd00::1"]


async def test_names_are_case_insensitive(lab: Lab) -> None:
    """Mixed-case questions match the zone and are counted under the lower-case name."""
    assert await lab.addresses("DETAILS.Bookinfo.LAB.") == ["10.0.0.1", "10.0.0.2"]
    assert lab.server.queries["details.bookinfo.lab"] == 1


async def test_flags_are_authoritative_and_copy_rd(lab: Lab) -> None:
    """Answers set QR and AA, copy RD from the query and never claim RA."""
    with_rd = await lab.udp(dns.message.make_query("details.bookinfo.lab", "A"))
    without_rd = dns.message.make_query("details.bookinfo.lab", "A")
    without_rd.flags &= ~dns.flags.RD
    reply = await lab.udp(without_rd)
    assert with_rd.flags & (dns.flags.QR | dns.flags.AA | dns.flags.RD | dns.flags.RA) == (
        dns.flags.QR | dns.flags.AA | dns.flags.RD
    )
    assert reply.flags & (dns.flags.RD | dns.flags.AA) == dns.flags.AA


async def test_unknown_name_is_nxdomain(lab: Lab) -> None:
    """Names outside the zone get an authoritative NXDOMAIN."""
    reply = await lab.udp(dns.message.make_query("nope.lab", "A"))
    assert reply.rcode() == dns.rcode.NXDOMAIN
    assert reply.flags & dns.flags.AA
    with pytest.raises(dns.resolver.NXDOMAIN):
        await lab.resolver.resolve("nope.lab", "A")


async def test_known_name_without_that_type_is_nodata(lab: Lab) -> None:
    """A v6-only name answers A with NOERROR and no records."""
    reply = await lab.udp(dns.message.make_query("v6only.lab", "A"))
    assert (reply.rcode(), reply.answer) == (dns.rcode.NOERROR, [])
    with pytest.raises(dns.resolver.NoAnswer):
        await lab.resolver.resolve("v6only.lab", "A")


async def test_set_and_remove_change_answers_at_runtime(lab: Lab) -> None:
    """set replaces a name's records, adds new names, and remove makes them NXDOMAIN."""
    lab.server.set("details.bookinfo.lab", ["10.0.0.9"])
    lab.server.set("New.Lab", ["10.1.1.1"])
    assert await lab.addresses("details.bookinfo.lab") == ["10.0.0.9"]
    assert await lab.addresses("new.lab") == ["10.1.1.1"]
    lab.server.remove("NEW.lab")
    with pytest.raises(dns.resolver.NXDOMAIN):
        await lab.resolver.resolve("new.lab", "A")


async def test_fail_answers_servfail_until_cleared(lab: Lab) -> None:
    """fail = True turns every answer into SERVFAIL; clearing it restores answers."""
    lab.server.fail = True
    reply = await lab.udp(dns.message.make_query("details.bookinfo.lab", "A"))
    with pytest.raises(dns.resolver.NoNameservers):
        await lab.resolver.resolve("details.bookinfo.lab", "A")
    lab.server.fail = False
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert await lab.addresses("details.bookinfo.lab") == ["10.0.0.1", "10.0.0.2"]


async def test_tcp_queries_are_served(lab: Lab) -> None:
    """The same port answers DNS over TCP."""
    query = dns.message.make_query("details.bookinfo.lab", "AAAA")
    reply = await dns.asyncquery.tcp(query, lab.host, port=lab.port, timeout=2)
    assert [rd.to_text() for rd in reply.answer[0]] == ["fd00::1"]


async def test_large_answers_truncate_over_udp_and_complete_over_tcp(lab: Lab) -> None:
    """An answer above 512 bytes sets TC over UDP; the resolver retries over TCP."""
    many = [f"10.2.0.{i}" for i in range(1, 101)]
    lab.server.set("big.lab", many)
    reply = await lab.udp(dns.message.make_query("big.lab", "A"))
    assert reply.flags & dns.flags.TC
    assert reply.answer == []
    assert await lab.addresses("big.lab") == many


def test_broken_and_unsupported_messages() -> None:
    """Garbage gets FORMERR with the query id, short junk is dropped, non-QUERY is NOTIMP."""
    server = LabDnsServer({})
    formerr = server.handle_wire(b"\x12\x34" + b"\xff" * 14, udp=True)
    assert formerr is not None
    parsed = dns.message.from_wire(formerr)
    assert (parsed.id, parsed.rcode()) == (0x1234, dns.rcode.FORMERR)
    assert server.handle_wire(b"\x00\x01", udp=True) is None
    notify = dns.message.make_query("x.lab", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert server.answer(notify).rcode() == dns.rcode.NOTIMP


def test_bad_addresses_are_rejected_and_replace_is_atomic() -> None:
    """Non-IP addresses raise ValueError and a failed replace keeps the previous zone."""
    server = LabDnsServer({"a.lab": ["10.0.0.1"]})
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        server.set("b.lab", ["not-an-ip"])
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        server.replace({"c.lab": ["10.0.0.3"], "d.lab": ["nope"]})
    assert server.records() == {"a.lab": ["10.0.0.1"]}


def test_load_zone_accepts_lists_and_single_addresses(tmp_path: Path) -> None:
    """Zone YAML maps names to a list of addresses or one address; bad shapes fail."""
    good = tmp_path / "zone.yaml"
    good.write_text("a.lab: [10.0.0.1, '::1']\nb.lab: 10.0.0.2\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a.lab: {x: 1}\n")
    assert load_zone(good) == {"a.lab": ["10.0.0.1", "::1"], "b.lab": ["10.0.0.2"]}
    with pytest.raises(ValueError, match="must map to an address"):
        load_zone(bad)


def test_main_reports_a_bad_zone_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """main exits 2 with a message when the zone file is invalid."""
    zone = tmp_path / "zone.yaml"
    zone.write_text("a.lab: [bogus]\n")
    assert main(["--listen", "127.0.0.1:0", "--zone", str(zone)]) == 2
    assert "bogus" in capsys.readouterr().err


async def test_cli_serves_zone_file_and_reloads_on_sighup(tmp_path: Path) -> None:
    """`python -m gateway_lab.dns_server` serves the YAML zone and re-reads it on SIGHUP."""
    zone = tmp_path / "zone.yaml"
    zone.write_text("web.lab: [10.9.0.1]\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gateway_lab.dns_server", "--listen", "127.0.0.1:0", "--zone", str(zone)),
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        bound = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))["listening"]
        resolver = resolver_for(bound["host"], bound["port"])
        before = [rd.to_text() for rd in await resolver.resolve("web.lab", "A")]
        zone.write_text("web.lab: [10.9.0.2, 10.9.0.3]\n")
        proc.send_signal(signal.SIGHUP)
        reloaded = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        after = [rd.to_text() for rd in await resolver.resolve("web.lab", "A")]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert before == ["10.9.0.1"]
    assert reloaded == {"reloaded": 1}
    assert after == ["10.9.0.2", "10.9.0.3"]
    assert code == 0
