"""Control path (lab): ``LabDnsServer``, a small authoritative A/AAAA server for loopback labs.

It plays the cluster DNS of the embedded lab: gateways resolve ServiceEntry hosts through it,
and scenarios change answers at runtime (``set``/``remove``) or make it answer SERVFAIL
(``fail = True``) to exercise DNS discovery. It serves UDP and TCP on the same port, answers
authoritatively (AA set, RD copied, RA clear), NXDOMAIN for unknown names, NODATA for known
names without records of the asked type, and matches names case-insensitively.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import struct
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import yaml

_log = logging.getLogger("gateway_lab.dns")
_UDP_LIMIT = 512
_BIND_ATTEMPTS = 8
_Addresses = tuple[tuple[str, ...], tuple[str, ...]]


def _key(name: str) -> dns.name.Name:
    return dns.name.from_text(name.strip())


def _split(addresses: Sequence[str]) -> _Addresses:
    v4: list[str] = []
    v6: list[str] = []
    for text in addresses:
        ip = ipaddress.ip_address(text.strip())
        (v4 if ip.version == 4 else v6).append(str(ip))
    return tuple(v4), tuple(v6)


class LabDnsServer:
    def __init__(self, records: Mapping[str, Sequence[str]], ttl: int = 5) -> None:
        self.ttl = ttl
        self.fail = False
        """When true every query is answered SERVFAIL."""
        self.shuffle = False
        """Answers keep the configured order (first address is predictable) unless this is set."""
        self.queries: Counter[str] = Counter()
        """Questions answered per lower-case name without the trailing dot."""
        self._zone: dict[dns.name.Name, _Addresses] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self.replace(records)

    def set(self, name: str, addresses: Sequence[str]) -> None:
        """Make ``name`` answer ``addresses`` (IPv4 go to A, IPv6 to AAAA); order is kept."""
        self._zone[_key(name)] = _split(addresses)

    def remove(self, name: str) -> None:
        self._zone.pop(_key(name), None)

    def replace(self, records: Mapping[str, Sequence[str]]) -> None:
        """Swap the whole zone; on a bad record the old zone stays and ``ValueError`` is raised."""
        self._zone = {_key(name): _split(addrs) for name, addrs in records.items()}

    def records(self) -> dict[str, list[str]]:
        return {
            name.to_text(omit_final_dot=True): [*v4, *v6] for name, (v4, v6) in self._zone.items()
        }

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on UDP and TCP; with port 0 both get the same free port."""
        loop = asyncio.get_running_loop()
        for attempt in range(_BIND_ATTEMPTS):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port)
            )
            self._udp = transport
            bound = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, host, bound)
            except OSError:
                # The UDP pick can be taken on TCP by someone else; only retry our own pick.
                self._udp.close()
                self._udp = None
                if port != 0 or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            return host, int(bound)
        raise OSError("no port free for both UDP and TCP")

    def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for writer in list(self._tcp_writers):
            writer.close()

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif self.fail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            self._answer_question(query.question[0], response)
        return response

    def _answer_question(self, question: dns.rrset.RRset, response: dns.message.Message) -> None:
        name = question.name
        self.queries[name.to_text(omit_final_dot=True).lower()] += 1
        entry = self._zone.get(name)
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return
        response.flags |= dns.flags.AA
        if entry is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return
        wanted = question.rdtype
        for rdtype, addresses in zip((dns.rdatatype.A, dns.rdatatype.AAAA), entry, strict=True):
            if addresses and wanted in (rdtype, dns.rdatatype.ANY):
                response.answer.append(
                    dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype, addresses)
                )

    def handle_wire(self, wire: bytes, *, udp: bool) -> bytes | None:
        """Answer one message; ``None`` when it is too broken to even echo its id."""
        try:
            query = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError):
            return _formerr(wire)
        response = self.answer(query)
        limit = 65535
        if udp:
            limit = max(_UDP_LIMIT, query.payload) if query.edns >= 0 else _UDP_LIMIT
        try:
            return response.to_wire(max_size=limit, want_shuffle=self.shuffle)
        except dns.exception.TooBig:
            # Truncated answer: the client retries over TCP.
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
            return truncated.to_wire(max_size=limit)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = self.handle_wire(await reader.readexactly(size), udp=False)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    (msg_id,) = struct.unpack("!H", wire[:2])
    response = dns.message.Message(id=msg_id)
    response.flags = dns.flags.QR
    response.set_rcode(dns.rcode.FORMERR)
    return response.to_wire()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: LabDnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = self._server.handle_wire(data, udp=True)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)


def load_zone(path: str | Path) -> dict[str, list[str]]:
    """Read a YAML zone ``{name: [ip, ...]}`` (a single ip string is accepted too)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of name to addresses")
    zone: dict[str, list[str]] = {}
    for name, value in data.items():
        addrs = [value] if isinstance(value, str) else value
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise ValueError(f"{path}: {name!r} must map to an address or a list of addresses")
        _split(addrs)
        zone[str(name)] = addrs
    return zone


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _reload(server: LabDnsServer, zone_file: str) -> None:
    try:
        server.replace(load_zone(zone_file))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        _log.error("zone reload from %s failed, keeping the old zone: %s", zone_file, exc)
        return
    print(json.dumps({"reloaded": len(server.records())}), flush=True)


async def serve(host: str, port: int, zone_file: str, ttl: int) -> None:
    """Serve until SIGINT/SIGTERM; SIGHUP re-reads ``zone_file``."""
    server = LabDnsServer(load_zone(zone_file), ttl=ttl)
    bound_host, bound_port = await server.start(host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, _reload, server, zone_file)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"listening": {"host": bound_host, "port": bound_port}}), flush=True)
    try:
        await stop.wait()
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_lab.dns_server", description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:5353", help="HOST:PORT (port 0 picks)")
    parser.add_argument("--zone", required=True, help="YAML file {name: [ip, ...]}")
    parser.add_argument("--ttl", type=int, default=5)
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        host, port = parse_listen(ns.listen)
        load_zone(ns.zone)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"dns_server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    asyncio.run(serve(host, port, ns.zone, ns.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
