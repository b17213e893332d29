"""Data path runtime: host discovery for upstream clusters (Envoy STRICT_DNS and LOGICAL_DNS).

``DnsDiscovery`` turns a ``ClusterSpec``'s endpoints into ``Host`` objects and keeps them fresh:

* ``DNS`` (Envoy ``STRICT_DNS``): every A/AAAA record of every endpoint name becomes a host that
  inherits the endpoint's weight, locality, labels, priority and locality weight.
* ``DNS_ROUND_ROBIN`` (Envoy ``LOGICAL_DNS``): only the first address of each answer is used.

Each name is re-resolved when its TTL runs out, clamped to ``[dns_refresh_min,
dns_refresh_max]``. A failed resolution keeps the last good addresses (Envoy does the same), so
a DNS outage never empties a cluster. Hosts whose ``(address, port)`` survive a refresh are the
same objects as before, so outlier counters, ejection and active-request counts carry over.
``hosts_from_static`` gives STATIC clusters the same construction and reuse rules.

``DnsResolver`` answers IP literals and ``localhost`` itself, then /etc/hosts (so Docker and
Kubernetes style names work), then DNS through dnspython's asyncio resolver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway_core.snapshot import ClusterSpec, Discovery, EndpointSpec
from gateway_core.upstream.host import Host, HostKey
from gateway_core.utils.clock import Clock
from gateway_core.utils.tasks import spawn

if TYPE_CHECKING:  # dnspython is imported at the first query: worker processes never resolve
    import dns.asyncresolver
    import dns.resolver

_MIN_SLEEP = 0.05
"""Floor for the refresh loop's sleep so a zero TTL and zero minimum cannot spin the loop."""
HOSTS_FILE_TTL = 0.0
"""Names from /etc/hosts are re-read (cheaply, by mtime) at every ``dns_refresh_min``."""

Log = logging.Logger | logging.LoggerAdapter[logging.Logger]


class DnsError(Exception):
    """A name could not be resolved; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class ResolveResult:
    addresses: tuple[str, ...]
    ttl: float
    """Seconds the answer may be cached (the smallest TTL seen); ``inf`` for IP literals."""


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """``/etc/hosts`` content to lower-case name -> addresses in file order."""
    names: dict[str, dict[str, None]] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or not is_ip(fields[0]):
            continue
        for name in fields[1:]:
            names.setdefault(name.lower().rstrip("."), {})[fields[0]] = None
    return {name: tuple(addrs) for name, addrs in names.items()}


class HostsFile:
    """``/etc/hosts`` lookups, re-parsed only when the file's mtime or size changes."""

    def __init__(self, path: str = "/etc/hosts") -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._names: dict[str, tuple[str, ...]] = {}

    def lookup(self, name: str) -> tuple[str, ...]:
        self._refresh()
        return self._names.get(name.lower().rstrip("."), ())

    def _refresh(self) -> None:
        try:
            st = os.stat(self._path)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            with open(self._path, encoding="utf-8", errors="replace") as f:
                self._names = parse_hosts(f.read())
            self._stamp = stamp
        except OSError:
            self._names, self._stamp = {}, None


class DnsResolver:
    """A/AAAA lookups through dnspython, after IP literals, ``localhost`` and /etc/hosts.

    ``nameservers`` None means the system configuration (/etc/resolv.conf, with its search
    list so Kubernetes-style short names work); the lab passes its own server's address.
    """

    def __init__(
        self,
        nameservers: Sequence[tuple[str, int]] | None = None,
        timeout: float = 2.0,
        *,
        hosts_file: str | None = "/etc/hosts",
    ) -> None:
        self._timeout = timeout
        self._hosts = HostsFile(hosts_file) if hosts_file else None
        self._nameservers = nameservers
        self._resolver: dns.asyncresolver.Resolver | None = None
        self._config_error = ""
        self._configured = False

    def prepare(self) -> None:
        """Import dnspython and read the resolver configuration now (a gateway that resolves
        calls it as it starts, so the first lookup does not do it on the event loop)."""
        if not self._configured:
            self._configure()

    def _configure(self) -> None:
        """Build dnspython's resolver (reading /etc/resolv.conf without ``nameservers``)."""
        import dns.asyncresolver
        import dns.exception
        import dns.nameserver

        self._configured = True
        nameservers, timeout = self._nameservers, self._timeout
        try:
            if nameservers is None:
                resolver = dns.asyncresolver.Resolver()
                resolver.use_search_by_default = True
            else:
                resolver = dns.asyncresolver.Resolver(configure=False)
                resolver.nameservers = [
                    dns.nameserver.Do53Nameserver(host, port) for host, port in nameservers
                ]
        except dns.exception.DNSException as exc:
            self._config_error = f"no usable DNS configuration ({exc})"
            return
        resolver.timeout = timeout
        resolver.lifetime = timeout
        self._resolver = resolver

    async def resolve(self, name: str) -> ResolveResult:
        literal = name.strip().strip("[]")
        if is_ip(literal):
            return ResolveResult((literal,), math.inf)
        if literal.lower().rstrip(".") == "localhost":
            return ResolveResult(("127.0.0.1",), math.inf)
        if self._hosts is not None and (listed := self._hosts.lookup(literal)):
            return ResolveResult(listed, HOSTS_FILE_TTL)
        if not self._configured:
            self._configure()
        if self._resolver is None:
            raise DnsError(f"cannot resolve {name!r}: {self._config_error}")
        a, aaaa = await asyncio.gather(
            self._query(self._resolver, literal, "A"),
            self._query(self._resolver, literal, "AAAA"),
            return_exceptions=True,
        )
        if isinstance(aaaa, BaseException) and not isinstance(aaaa, Exception):
            raise aaaa
        # A failures fail the lookup (a partial answer would drop live hosts); AAAA is a bonus.
        if isinstance(a, BaseException):
            if not isinstance(a, Exception):
                raise a
            raise DnsError(f"cannot resolve {name!r}: {self._describe(a)}")
        import dns.resolver

        answers = [a] + ([aaaa] if isinstance(aaaa, dns.resolver.Answer) else [])
        addresses: dict[str, None] = {}
        ttls: list[float] = []
        for answer in answers:
            if answer.rrset is not None:
                addresses.update((rd.to_text(), None) for rd in answer.rrset)
                ttls.append(float(answer.chaining_result.minimum_ttl))
        if not addresses:
            reason = self._describe(aaaa) if isinstance(aaaa, Exception) else "no A/AAAA records"
            raise DnsError(f"cannot resolve {name!r}: {reason}")
        return ResolveResult(tuple(addresses), min(ttls))

    @staticmethod
    async def _query(
        resolver: dns.asyncresolver.Resolver, name: str, rdtype: str
    ) -> dns.resolver.Answer:
        return await resolver.resolve(name, rdtype, raise_on_no_answer=False)

    def _describe(self, exc: BaseException) -> str:
        import dns.resolver

        if isinstance(exc, dns.resolver.NXDOMAIN):
            return "NXDOMAIN (no such name)"
        if isinstance(exc, dns.resolver.LifetimeTimeout):
            return f"no answer within {self._timeout:g}s"
        if isinstance(exc, dns.resolver.NoNameservers):
            return "no nameserver gave an answer (SERVFAIL or refused)"
        return f"{type(exc).__name__}: {exc}"


def hosts_from_static(
    spec: ClusterSpec, existing: Mapping[HostKey, Host] | None = None
) -> list[Host]:
    """Hosts of a STATIC cluster, reusing ``existing`` objects for keys that are still present."""
    hosts, _ = _build(((ep, (ep.address,)) for ep in spec.endpoints), existing or {})
    return list(hosts.values())


def _build(
    resolved: Iterable[tuple[EndpointSpec, tuple[str, ...]]], existing: Mapping[HostKey, Host]
) -> tuple[dict[HostKey, Host], bool]:
    """New key->Host map in endpoint order, and whether anything differs from ``existing``."""
    hosts: dict[HostKey, Host] = {}
    changed = False
    for ep, addresses in resolved:
        hostname = None if is_ip(ep.address) else ep.address
        for address in addresses:
            key = (address, ep.port)
            if key in hosts:
                continue  # two names sharing an address: the first endpoint's attributes win
            host = existing.get(key)
            if host is None:
                host = Host(address, ep.port)
                _apply(host, ep, hostname)
                changed = True
            elif _apply(host, ep, hostname):
                changed = True
            hosts[key] = host
    return hosts, changed or hosts.keys() != existing.keys()


def _apply(host: Host, ep: EndpointSpec, hostname: str | None) -> bool:
    """Copy the endpoint's attributes onto ``host``; True when one of them changed."""
    wanted = (
        max(1, ep.weight),
        ep.locality,
        dict(ep.labels),
        ep.priority,
        ep.locality_weight,
        hostname,
    )
    current = (
        host.weight,
        host.locality,
        dict(host.labels),
        host.priority,
        host.locality_weight,
        host.hostname,
    )
    if wanted == current:
        return False
    host.weight = max(1, ep.weight)
    host.locality = ep.locality
    host.labels = ep.labels
    host.priority = ep.priority
    host.locality_weight = ep.locality_weight
    host.hostname = hostname
    return True


@dataclass(slots=True)
class _Target:
    """One DNS name of the cluster and what is known about it."""

    name: str
    addresses: tuple[str, ...] | None = None
    """Last good answer; None until the first success."""
    due: float = -math.inf
    error: str | None = None


class DnsDiscovery:
    def __init__(
        self,
        spec: ClusterSpec,
        resolver: DnsResolver,
        clock: Clock,
        on_update: Callable[[list[Host]], None],
        log: Log | None = None,
        *,
        existing: Mapping[HostKey, Host] | None = None,
    ) -> None:
        """``existing``: hosts of the previous version of this cluster (after a reload); their
        objects are reused and their addresses serve as the last good answer until DNS
        answers."""
        self._spec = spec
        self._resolver = resolver
        self._clock = clock
        self._on_update = on_update
        self._log: Log = log or logging.getLogger("gateway.upstream.dns")
        self._hosts: dict[HostKey, Host] = dict(existing or {})
        self._targets: dict[str, _Target] = {}
        for ep in spec.endpoints:
            target = self._targets.setdefault(ep.address, _Target(ep.address))
            known = [h.address for h in self._hosts.values() if h.hostname == ep.address]
            if known:
                target.addresses = tuple(dict.fromkeys(known))
        self._published = False
        self._task: asyncio.Task[None] | None = None

    @property
    def hosts(self) -> list[Host]:
        return list(self._hosts.values())

    async def start(self) -> None:
        """Resolve every name once (so the cluster starts warm), then keep refreshing."""
        if self._task is not None:
            raise RuntimeError(f"DNS discovery for {self._spec.key} is already running")
        await self.refresh_once()
        self._task = spawn(self._run(), name=f"dns-discovery {self._spec.key}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def next_refresh_in(self) -> float:
        """Seconds until the earliest name is due again."""
        if not self._targets:
            return self._spec.dns_refresh_max
        due = min(t.due for t in self._targets.values())
        return max(0.0, due - self._clock.monotonic())

    async def refresh_once(self, *, force: bool = False) -> bool:
        """Re-resolve the names whose TTL ran out (all of them with ``force`` or on the first
        call); returns True when ``on_update`` was called."""
        now = self._clock.monotonic()
        due = [t for t in self._targets.values() if force or t.due <= now]
        if due:
            results = await asyncio.gather(
                *(self._resolver.resolve(t.name) for t in due), return_exceptions=True
            )
            now = self._clock.monotonic()
            for target, result in zip(due, results, strict=True):
                if isinstance(result, DnsError):
                    self._failed(target, result, now)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    self._resolved(target, result, now)
        return self._publish()

    def _resolved(self, target: _Target, result: ResolveResult, now: float) -> None:
        if target.error is not None:
            self._log.info(
                "cluster %s: DNS name %s resolves again: %s",
                self._spec.key,
                target.name,
                ", ".join(result.addresses),
            )
        target.error = None
        target.addresses = result.addresses
        target.due = now + min(
            max(result.ttl, self._spec.dns_refresh_min), self._spec.dns_refresh_max
        )

    def _failed(self, target: _Target, error: DnsError, now: float) -> None:
        text = str(error)
        if text != target.error:
            kept = len(target.addresses or ())
            self._log.warning(
                "cluster %s: DNS resolution of %s failed: %s (keeping %d last known addresses)",
                self._spec.key,
                target.name,
                text,
                kept,
            )
        target.error = text
        target.due = now + self._spec.dns_refresh_min

    def _publish(self) -> bool:
        first_only = self._spec.discovery is Discovery.DNS_ROUND_ROBIN
        resolved = []
        for ep in self._spec.endpoints:
            addresses = self._targets[ep.address].addresses or ()
            resolved.append((ep, addresses[:1] if first_only else addresses))
        hosts, changed = _build(resolved, self._hosts)
        self._hosts = hosts
        if not changed and self._published:
            return False
        self._published = True
        self._on_update(list(hosts.values()))
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(max(self.next_refresh_in(), _MIN_SLEEP))
            try:
                await self.refresh_once()
            except Exception:
                # A failing on_update must not end discovery for the cluster's lifetime.
                self._log.exception("cluster %s: DNS refresh failed", self._spec.key)
