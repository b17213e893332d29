"""Control path: the admin dashboard's document — the live state, rates and recent errors.

Everything here reads what the gateway already keeps: the snapshot, the last reload result, the
listeners' loaded certificates, each cluster's priority state and host flags (``/clusters``),
the downstream request counters (``GatewayMetrics``), each cluster's response counters and each
host's request counter, and the runtime's bounded ring of recent errors. Nothing is added to the
request path. Rates are counter differences between samples taken by ``RateSampler``, which the
dashboard calls at most once per update period however many pages are open.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway_core.server.dump import cluster_state_dump
from gateway_core.server.state import GatewayRuntime

RATE_WINDOW = 1.0
"""Seconds of counter history a rate is computed over (the newest sample against the oldest
one at most this old)."""


@dataclass(frozen=True, slots=True)
class Counters:
    """The counters one sample reads: downstream requests, per-cluster upstream responses and
    per-host upstream requests (``(cluster, address, port)``)."""

    at: float
    downstream: int
    clusters: dict[str, int]
    hosts: dict[tuple[str, str, int], int]


def read_counters(runtime: GatewayRuntime, now: float) -> Counters:
    metrics = runtime.metrics
    metrics.fold()  # the batched status counts, as a Prometheus scrape does
    clusters: dict[str, int] = {}
    hosts: dict[tuple[str, str, int], int] = {}
    for key, cluster in runtime.clusters.items():
        s = cluster.stats
        clusters[key] = s.rq_2xx + s.rq_3xx + s.rq_4xx + s.rq_5xx
        for h in cluster.hosts:
            hosts[(key, h.address, h.port)] = h.total_requests
    return Counters(now, sum(metrics.downstream_rq.values()), clusters, hosts)


class RateSampler:
    """Keeps ``RATE_WINDOW`` seconds of counter samples; rates are per second over them."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self._samples: deque[Counters] = deque()

    def add(self, sample: Counters) -> None:
        self._samples.append(sample)
        # Keep one sample at least ``window`` old, so the window is always covered.
        while len(self._samples) > 2 and self._samples[1].at <= sample.at - self.window:
            self._samples.popleft()

    def rates(self) -> Rates | None:
        """Rates between the oldest and newest samples; None until two samples exist."""
        if len(self._samples) < 2:
            return None
        old, new = self._samples[0], self._samples[-1]
        span = new.at - old.at
        if span <= 0:
            return None

        def per_second(now: int, before: int) -> float:
            # A counter that went down belongs to an object that was replaced: count from 0.
            return (now - before if now >= before else now) / span

        return Rates(
            span=span,
            downstream=per_second(new.downstream, old.downstream),
            clusters={k: per_second(v, old.clusters.get(k, 0)) for k, v in new.clusters.items()},
            hosts={k: per_second(v, old.hosts.get(k, 0)) for k, v in new.hosts.items()},
        )


@dataclass(frozen=True, slots=True)
class Rates:
    span: float
    downstream: float
    clusters: dict[str, float]
    hosts: dict[tuple[str, str, int], float]


def host_state(host: dict[str, Any]) -> str:
    """``ejected`` (outlier detection), ``unhealthy`` (active health check past its unhealthy
    threshold), ``failing`` (its last health-check probe failed, still below the threshold, so
    it still takes traffic) or ``healthy``."""
    if host["ejected"]:
        return "ejected"
    if host["health_check_failed"]:
        return "unhealthy"
    probe = host["health_check"]
    if probe is not None and probe["failures"] > 0:
        return "failing"
    return "healthy"


def dashboard_document(
    runtime: GatewayRuntime, counters: Counters, rates: Rates | None, loop_now: float
) -> dict[str, Any]:
    """The whole page's data: what ``/dashboard/state`` answers and each SSE event carries."""
    snapshot = runtime.snapshot
    node = snapshot.node
    totals = counters.clusters
    cluster_rates = rates.clusters if rates is not None else {}
    all_rps = sum(cluster_rates.values())
    all_total = sum(totals.values())
    clusters = []
    destinations: dict[str, dict[str, Any]] = {}
    for key, cluster in sorted(runtime.clusters.items()):
        spec = cluster.spec
        state = cluster_state_dump(cluster)
        for h in state["hosts"]:
            h["state"] = host_state(h)
            h["rps"] = None if rates is None else rates.hosts.get((key, h["address"], h["port"]))
        rps = cluster_rates.get(key) if rates is not None else None
        entry = {
            "key": key,
            "service": spec.service_host,
            "subset": spec.subset,
            "total": totals.get(key, 0),
            "rps": rps,
            "share": _share(rps, all_rps),
            "total_share": _share(totals.get(key, 0), all_total),
            **state,
        }
        clusters.append(entry)
        dest = destinations.setdefault(
            spec.service_host,
            {"service": spec.service_host, "total": 0, "rps": None, "clusters": []},
        )
        dest["total"] += entry["total"]
        if rps is not None:
            dest["rps"] = (dest["rps"] or 0.0) + rps
        dest["clusters"].append(key)
    for dest in destinations.values():
        dest["share"] = _share(dest["rps"], all_rps)
        dest["total_share"] = _share(dest["total"], all_total)
        for c in clusters:
            if c["service"] == dest["service"]:
                c["destination_share"] = _share(c["rps"], dest["rps"] or 0.0)
    reload = runtime.last_reload
    metrics = runtime.metrics
    return {
        "tier": runtime.settings.tier,
        "node": {"cluster": node.cluster_name, "locality": str(node.locality)},
        "version": snapshot.version,
        "ready": runtime.ready,
        "draining": runtime.draining,
        "now": metrics.wall_clock(),
        "reload": None
        if reload is None
        else {
            "at": reload.at,
            "accepted": reload.accepted,
            "changed": reload.changed,
            "version": reload.version,
            "diagnostics": reload.error.splitlines(),
        },
        "reloads": dict(metrics.config_reloads),
        "listeners": _listeners(runtime),
        "rate": {
            "window": None if rates is None else round(rates.span, 3),
            "requests_per_second": None if rates is None else rates.downstream,
            "upstream_per_second": None if rates is None else all_rps,
            "requests_total": counters.downstream,
            "upstream_total": all_total,
        },
        "destinations": sorted(destinations.values(), key=lambda d: str(d["service"])),
        "clusters": clusters,
        "response_flags": dict(sorted(metrics.local_replies.items())),
        "errors": recent_errors(runtime, loop_now),
    }


def _share(part: float | None, whole: float) -> float | None:
    if part is None or whole <= 0:
        return None
    return round(100.0 * part / whole, 1)


def _listeners(runtime: GatewayRuntime) -> list[dict[str, Any]]:
    now = runtime.metrics.wall_clock()
    expiry: dict[tuple[str, str], tuple[str, float]] = {}
    if runtime.listeners is not None:
        for listener, server, cert_file, not_after in runtime.listeners.certificate_expiry():
            expiry[(listener, server)] = (cert_file, not_after)
    out = []
    for ls in runtime.snapshot.listeners:
        servers = []
        for s in ls.servers:
            cert = expiry.get((ls.name, s.name))
            servers.append(
                {
                    "name": s.name,
                    "hosts": list(s.hosts),
                    "tls_mode": None if s.tls is None else s.tls.mode.value,
                    "certificate": None
                    if cert is None
                    else {
                        "file": cert[0],
                        "not_after": cert[1],
                        "expires_in_seconds": round(cert[1] - now, 1),
                    },
                }
            )
        out.append(
            {
                "name": ls.name,
                "bind": ls.bind,
                "port": ls.port,
                "protocol": ls.protocol.value,
                "servers": servers,
            }
        )
    return out


def recent_errors(runtime: GatewayRuntime, loop_now: float) -> list[dict[str, Any]]:
    """The ring, newest first; ``age`` in seconds (``loop_now``: the event loop's clock, the one
    the data path stamped the entries with)."""
    out = []
    for at, status, flags, method, authority, path, host, cluster, route in reversed(
        runtime.recent_errors
    ):
        out.append(
            {
                "age": round(max(0.0, loop_now - at), 1),
                "status": status,
                "flags": ",".join(flags) or "-",
                "method": method.decode("latin-1"),
                "authority": authority.decode("latin-1"),
                "path": path.decode("latin-1"),
                "upstream_host": host.label if host is not None else None,
                "cluster": cluster,
                "route": route,
            }
        )
    return out
