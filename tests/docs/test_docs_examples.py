"""Control and data path: the worked numbers of docs/config-reference.md and docs/load-balancing.md.

Each test computes a documented example with the code, and checks both that the code gives the
documented value and that the doc still shows it, so neither can drift alone.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

import tier1_gateway.cli
import tier2_gateway.cli
from gateway_core import snapshot as snap
from gateway_core.cli import _sticky_secret
from gateway_core.compiler import compile_snapshot
from gateway_core.compiler.clusters import build_cluster, translate_client_tls
from gateway_core.compiler.index import ConfigIndex
from gateway_core.compiler.locality import apply_distribute, assign_priorities
from gateway_core.compiler.policies import translate_outlier
from gateway_core.config import destination_rule as dr
from gateway_core.config.hosts import fqdn
from gateway_core.config.loader import load_text
from gateway_core.config.resources import Resources
from gateway_core.config.validation import validate_resources
from gateway_core.proxy import sticky
from gateway_core.proxy.local_reply import redirect_location
from gateway_core.proxy.messages import upstream_target
from gateway_core.proxy.retry import IDEMPOTENT, backoff, failure_retriable
from gateway_core.proxy.targets import choose_target
from gateway_core.routing.actions import DEFAULT_RETRY, RedirectAction, RetrySpec, RouteAction
from gateway_core.routing.actions import WeightedCluster as Weighted
from gateway_core.routing.matchers import PrefixMatcher, RequestMatch
from gateway_core.routing.request import RequestHead
from gateway_core.snapshot import ClusterSpec, EndpointSpec, Locality, NodeInfo, OutlierPolicy
from gateway_core.upstream.host import Host
from gateway_core.upstream.lb import LbContext
from gateway_core.upstream.lb import priority as prio
from gateway_core.upstream.lb.hash_key import generate_cookie, hash64
from gateway_core.upstream.lb.maglev import MaglevLoadBalancer
from gateway_core.upstream.lb.ring_hash import RingHashLoadBalancer, build_ring
from gateway_core.upstream.lb.round_robin import RoundRobinLoadBalancer
from gateway_core.upstream.outlier import HostMonitor, LocalOrigin, OutlierDetector
from gateway_core.utils.clock import FakeClock

if TYPE_CHECKING:
    from gateway_core.upstream.cluster import Cluster

DOCS = Path(__file__).resolve().parents[2] / "docs"
CONFIG_REF = (DOCS / "config-reference.md").read_text(encoding="utf-8")
LB_DOC = (DOCS / "load-balancing.md").read_text(encoding="utf-8")
NET, CLUSTER = "topology.istio.io/network", "topology.istio.io/cluster"
NO_LABELS: Mapping[str, str] = {}


def documented(doc: str, *snippets: str) -> None:
    for snippet in snippets:
        assert snippet in doc.replace("**", ""), f"the doc no longer shows {snippet!r}"


def table(doc: str, header: str) -> list[list[str]]:
    """Body rows of the markdown table whose header line starts with ``header``."""
    lines = doc.split("\n" + header, 1)[1].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([cell.strip().replace("**", "").replace("\\|", "|") for cell in cells])
    assert rows, f"no rows under {header!r}"
    return rows


def ints(cell: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", cell)]


def codes(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def diagnostics(text: str) -> str:
    loaded = load_text(text, "doc.yaml")
    validate_resources(loaded.resources, loaded.diagnostics)
    return "\n".join(str(d) for d in loaded.diagnostics)


def resources(text: str) -> Resources:
    loaded = load_text(text, "doc.yaml")
    validate_resources(loaded.resources, loaded.diagnostics)
    assert loaded.diagnostics.ok, [str(d) for d in loaded.diagnostics.errors]
    return loaded.resources


def fenced(doc: str, after: str, fence: str = "```yaml\n") -> str:
    """The first fenced block that follows the text ``after``."""
    return doc.split(after, 1)[1].split(fence, 1)[1].split("```", 1)[0]


# -- config-reference.md ------------------------------------------------------------------------


def test_cli_error_example_is_real_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The broken.yaml run in config-reference §2 prints exactly the documented lines."""
    start = "```\n$ .venv/bin/tier2-gateway validate"
    shown = fenced(CONFIG_REF, "A real run.", start).splitlines()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text(fenced(CONFIG_REF, "A real run."), encoding="utf-8")
    rc = tier2_gateway.cli.main(["validate", "--config", "broken.yaml"])
    out, err = capsys.readouterr()
    assert (rc, shown[0], shown[-2:]) == (1, " --config broken.yaml", ["$ echo $?", "1"])
    assert out.splitlines() == shown[1:-3]
    assert err.strip() == shown[-3]


REJECTED = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  servers:
  - {port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com],
     tls: {credentialName: cert}}
  - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: [a.example.com]}
  - {port: {number: 8081, name: h2, protocol: HTTP2}, hosts: [a.example.com]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: shop}
spec:
  hosts: [a.example.com]
  gateways: [gw]
  http: [{delegate: {name: child}}]
  tcp: [{route: [{destination: {host: db}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    loadBalancer: {localityLbSetting: {failover: [{from: a, to: b}]}}
"""
QUOTED = [
    "tls.mode defaults to PASSTHROUGH, which is not supported by this gateway: ",
    "protocol TCP is not supported by this gateway: it serves HTTP and HTTPS only",
    "delegate is not supported by this gateway: put the delegated routes in this",
    "ignored: this gateway serves HTTP routes only",
    "ISTIO_MUTUAL: this gateway has no mesh identity and will connect in plaintext",
    "outlier detection policy must be provided for failover: without outlierDetection",
]


def test_documented_rejections_and_warnings() -> None:
    """Messages quoted in the docs for unsupported constructs are the real ones."""
    messages = diagnostics(REJECTED)
    for quoted in QUOTED:
        assert quoted in messages
        documented(CONFIG_REF + LB_DOC, quoted)


RA = RedirectAction
REDIRECT_ACTIONS = [
    RA(https_redirect=True, https_port=8443),
    RA(https_redirect=True, https_port=8443),
    RA(https_redirect=True, https_port=443),
    RA(path=b"/new"),
    RA(path=b"/new?y=2"),
    RA(scheme=b"https"),
    RA(authority=b"new.example.com"),
    RA(authority=b"new.example.com:9000"),
    RA(scheme=b"https", port=8443),
    RA(scheme=b"https", port=443),
    RA(scheme=b"https", derive_port="FROM_REQUEST_PORT"),
    RA(derive_port="FROM_PROTOCOL_DEFAULT"),
    RA(prefix_rewrite=b"/z"),
]


def test_redirect_port_rules_table() -> None:
    """Every row of the redirect table: GET /a/b?x=1 on port 8080 gets the documented Location."""
    rows = table(CONFIG_REF, "| Action | Request Host |")
    assert len(rows) == len(REDIRECT_ACTIONS)
    for action, (action_cell, host_cell, location_cell) in zip(REDIRECT_ACTIONS, rows, strict=True):
        values = (action.scheme, action.authority, action.path, action.prefix_rewrite)
        tokens = [v.decode() for v in values if v is not None]
        tokens += [str(v) for v in (action.derive_port, action.port) if v is not None]
        tokens += [f"on {action.https_port}"] if action.https_redirect else []
        assert all(token in action_cell for token in tokens), (action_cell, tokens)
        host = codes(host_cell)[0].encode()
        req = RequestHead(b"GET", b"/a/b", b"x=1", host, b"http", 8080, [(b"host", host)])
        match = RequestMatch(uri=PrefixMatcher(b"/a")) if action.prefix_rewrite else None
        assert redirect_location(action, req, match).decode() == codes(location_cell)[0]


def test_short_name_expansion_table() -> None:
    """Every row of the host expansion table."""
    for written_cell, namespace_cell, means_cell in table(CONFIG_REF, "| Written | In namespace |"):
        namespace = (codes(namespace_cell) or ["elsewhere"])[0]
        written = codes(written_cell)
        expanded = written if means_cell == "unchanged" else codes(means_cell)[:1] * len(written)
        assert [fqdn(w, namespace) for w in written] == expanded


NAMES = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  servers:
  - {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*.example.com"],
     tls: {httpsRedirect: true}}
  - {port: {number: 8443, name: https, protocol: HTTPS}, hosts: [shop.example.com],
     tls: {mode: SIMPLE, credentialName: bookinfo-credential}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop2, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http: [{name: all, route: [{destination: {host: reviews, port: {number: 9080}}}]}]
"""


def test_route_table_and_cluster_names() -> None:
    """Listener, server, route table, vhost, route and cluster names are as documented."""
    snap = compile_snapshot(resources(NAMES), NodeInfo(cert_dir="/etc/gateway/certs"))
    https = next(s for s in snap.listeners if s.port == 8443)
    vhost = snap.route_tables[https.servers[0].route_table].virtual_hosts[0]
    redirect = snap.route_tables["http.8080"].virtual_hosts[0].routes[0]
    names = [https.name, https.servers[0].name, https.servers[0].route_table, vhost.name]
    names += [vhost.routes[0].name, redirect.name]
    assert names == [
        "0.0.0.0_8443",
        "shop.gw.1",
        "https.8443.shop.gw.1",
        "shop.example.com:8443",
        "shop/shop2/http[0].all",
        "shop/gw/https-redirect",
    ]
    assert list(snap.clusters) == ["outbound|9080||reviews.shop.svc.cluster.local"]
    documented(CONFIG_REF, *(f"`{name}`" for name in names[1:]))


def test_credential_name_paths() -> None:
    """credentialName resolves to <cert-dir>/<name>/tls.crt, tls.key and ca.crt."""
    snapshot = compile_snapshot(resources(NAMES), NodeInfo(cert_dir="/etc/gateway/certs"))
    server = next(s for s in snapshot.listeners if s.port == 8443).servers[0].tls
    cred, client_dir = "/etc/gateway/certs/bookinfo-credential", "/etc/gateway/certs/tier1-client"
    assert server is not None
    assert (server.cert_file, server.key_file, server.ca_file) == (
        f"{cred}/tls.crt",
        f"{cred}/tls.key",
        None,
    )
    mutual = {"mode": "MUTUAL", "credentialName": "tier1-client"}
    client = translate_client_tls(dr.ClientTLSSettings.model_validate(mutual), snapshot.node)
    assert client is not None
    files = tuple(f"{client_dir}/{name}" for name in ("tls.crt", "tls.key", "ca.crt"))
    assert (client.cert_file, client.key_file, client.ca_file) == files
    documented(CONFIG_REF, f"`{cred}/tls.crt`")


SHOP = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: [shop.example.com]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rx, namespace: shop}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
"""
REWRITE = (
    SHOP
    + """\
  - rewrite: {uriRegexRewrite: {match: '%s', rewrite: '%s'}}
    route: [{destination: {host: a}}]
"""
)


def test_uri_regex_rewrite_examples() -> None:
    """Both uriRegexRewrite examples of the rewrite table, compiled and applied by the gateway."""
    (row,) = [r for r in table(CONFIG_REF, "| Field | Behaviour |") if r[0] == "`uriRegexRewrite`"]
    fixed = re.search(r"`([^`]+)` → `([^`]+)` turns `([^`]+)` into `([^`]+)`", row[1])
    istio = re.search(r"example `([^`]+)` gives `([^`]+)`", row[1])
    assert fixed is not None and istio is not None, row[1]
    pattern, rewrite, path, output = fixed.groups()
    examples = [(rewrite, output), istio.groups()]
    for substitution, expected in examples:
        snapshot = compile_snapshot(resources(REWRITE % (pattern, substitution)), NodeInfo())
        host = b"shop.example.com"
        req = RequestHead(b"GET", path.encode(), b"", host, b"http", 8080, [(b"host", host)])
        entry, match = snapshot.route_tables["http.8080"].route_entry(req)
        assert entry is not None
        assert upstream_target(req, entry, match).decode() == expected, substitution


def test_retry_defaults_backoff_and_idempotent_methods() -> None:
    """Default retries (Istio 1.24+: no status code), the back-off ceiling, the idempotent set,
    and which policies cover connect failures and resets."""
    assert (DEFAULT_RETRY.attempts, DEFAULT_RETRY.retriable_status_codes) == (2, frozenset())
    assert (DEFAULT_RETRY.per_try_timeout, DEFAULT_RETRY.previous_hosts) == (None, True)
    default_on = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
    assert DEFAULT_RETRY.retry_on == set(default_on.split(","))
    documented(CONFIG_REF, "so a 503 is not retried", "default lists none since 1.24")
    rng = random.Random(3)
    for n, ceiling in ((0, 0.025), (1, 0.05), (3, 0.2), (4, 0.25), (9, 0.25)):
        assert all(0 <= backoff(DEFAULT_RETRY, n, rng) < ceiling for _ in range(200))
    assert {m.decode() for m in IDEMPOTENT} == {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"}
    assert failure_retriable(RetrySpec(retry_on=frozenset({"5xx"})), "connect-failure")
    assert not failure_retriable(RetrySpec(retry_on=frozenset({"retriable-4xx"})), "reset")
    assert failure_retriable(RetrySpec(retry_on=frozenset({"gateway-error"})), "reset")
    documented(CONFIG_REF, f"`{default_on}`", "| `backoff` | yes | 25 ms |", "capped at `10")
    documented(CONFIG_REF, "(`GET`, `HEAD`, `OPTIONS`, `TRACE`, `PUT`, `DELETE`)")


def test_istio_123_retry_snippet_restores_the_503_default() -> None:
    """The documented block gives back Istio 1.23's default: its conditions plus status 503."""
    found = re.search(r"`(retries: \{attempts: 2, retryOn: [^`]+)`", CONFIG_REF)
    assert found is not None
    rule = f"  - {{{found.group(1)}, route: [{{destination: {{host: a}}}}]}}\n"
    snapshot = compile_snapshot(resources(SHOP + rule), NodeInfo())
    (entry,) = snapshot.route_tables["http.8080"].virtual_hosts[0].routes
    assert entry.retries == RetrySpec(retriable_status_codes=frozenset({503}))
    assert entry.retries.retry_on == DEFAULT_RETRY.retry_on


# -- load-balancing.md: settings and algorithms -------------------------------------------------

KINDS = {
    "ROUND_ROBIN": snap.LbKind.ROUND_ROBIN,
    "RANDOM": snap.LbKind.RANDOM,
    "ring": snap.LbKind.RING_HASH,
}


def test_policy_precedence_table() -> None:
    """Port-level settings replace the policy whole; subsets override field by field."""
    index = ConfigIndex.build(resources(fenced(LB_DOC, "## 2. Where the settings come from")))
    host, node = "reviews.shop.svc.cluster.local", NodeInfo(locality=Locality("us-west1", "a"))
    rows = table(LB_DOC, "| Cluster | Algorithm |")
    for cluster_cell, algorithm, outlier, failover, panic in rows:
        port, subset = re.findall(r"outbound\|(\d+)\|(\w*)\|", cluster_cell)[0]
        spec = build_cluster("c", host, int(port), subset or None, index, node)
        assert spec.lb.kind is KINDS[algorithm.split()[0]]
        assert spec.panic_threshold == ints(panic)[0]
        assert spec.locality.failover_enabled is (failover == "on")
        assert (spec.outlier.consecutive_5xx if spec.outlier else 0) == (
            3 if "\u00d7 3" in outlier else 0
        )


def _hosts(weights: Sequence[int]) -> list[Host]:
    return [Host(f"10.0.0.{i}", 8080, weight=w) for i, w in enumerate(weights)]


@pytest.mark.parametrize(("weights", "window"), [((5, 1, 1), 7), ((3, 1), 4)])
def test_smooth_round_robin_windows(weights: tuple[int, ...], window: int) -> None:
    """Every window of sum(weights) picks holds each host exactly weight times."""
    for seed in range(5):
        hosts = _hosts(weights)
        lb = RoundRobinLoadBalancer(hosts, random.Random(seed))
        picks = [lb.choose_host(LbContext()) for _ in range(10 * window)]
        for start in range(len(picks) - window + 1):
            counts = Counter(h.address for h in picks[start : start + window] if h is not None)
            assert counts == {h.address: h.weight for h in hosts}
        runs = "".join("a" if h is hosts[0] else "x" for h in picks)
        assert max(len(r) for r in runs.split("x")) == weights[0]
    documented(LB_DOC, "a a a a b c a | a a a a b c a")


def test_ring_hash_point_counts_table() -> None:
    """Every row of the ring size table: K = max(160, ceil(1024 / units)) points per unit."""
    for hosts_cell, points_cell, size_cell in table(LB_DOC, "| Hosts (weights) |"):
        n, *weight = ints(hosts_cell) if "\u00d7" in hosts_cell else (0, *ints(hosts_cell))
        weights = weight * n if n else weight
        ring = build_ring(_hosts(weights), [float(w) for w in weights], 1024)
        counts = [Counter(i for _, i in ring)[i] for i in range(len(weights))]
        assert counts == (ints(points_cell) * len(weights))[: len(weights)]
        assert len(ring) == ints(size_cell)[0]


def test_remap_fractions_over_ten_thousand_keys() -> None:
    """Removing or adding one of 10 hosts moves the documented number of keys."""
    hosts, keys = _hosts([1] * 11), [hash64(f"user-{i}".encode()) for i in range(10000)]
    moved = []
    for lb_type in (RingHashLoadBalancer, MaglevLoadBalancer):
        owners = {}
        for n in (9, 10, 11):
            lb = lb_type(hosts[:n], random.Random(1))
            owners[n] = [lb.choose_host(LbContext(hash_key=k)) for k in keys]
        moved += [
            sum(a is not b for a, b in zip(owners[10], owners[n], strict=True)) for n in (9, 11)
        ]
    assert moved == [1004, 981, 1051, 908]
    documented(
        LB_DOC,
        "| 1004 keys moved (10.0%) | 1051 (10.5%) |",
        "| 981 keys moved (9.8%) | 908 (9.1%) |",
    )


def test_generated_hash_cookie() -> None:
    """The Envoy-style generated cookie for the documented client and host."""
    spec = snap.HashKeySpec(snap.HashKeyKind.COOKIE, "user-session", "/", 3600.0)
    cookie = generate_cookie(spec, ("203.0.113.7", 51234), ("10.0.0.5", 8443))
    header = 'user-session="a5676d489bd4a0c2"; Max-Age=3600; Path=/; HttpOnly'
    assert cookie.set_cookie.decode() == header
    assert cookie.hash_key == hash64(b"a5676d489bd4a0c2")
    documented(LB_DOC, f"set-cookie: {header}")


# -- load-balancing.md: locality and priorities -------------------------------------------------


def _priorities(
    local: str,
    endpoints: Sequence[tuple[str, Mapping[str, str]]],
    setting: Mapping[str, object] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[int]:
    specs = [
        EndpointSpec(f"10.0.0.{i}", 80, locality=Locality.parse(loc), labels=lbl)
        for i, (loc, lbl) in enumerate(endpoints)
    ]
    lb = dr.LocalityLoadBalancerSetting.model_validate(setting) if setting is not None else None
    return [
        e.priority for e in assign_priorities(Locality.parse(local), labels or {}, specs, lb, True)
    ]


def test_lab_and_istio_task_priorities() -> None:
    """Lab Tier-1 gets 0/1/2; Istio's failover task 0/1/2/3, or 0/1/2/2 without failover."""
    lab = [(loc, NO_LABELS) for loc in ("us-west1/us-west1-a", "us-west1/us-west1-b")]
    lab.append(("us-east1/us-east1-b", NO_LABELS))
    assert _priorities("us-west1/us-west1-a", lab) == [0, 1, 2]
    task = [(f"region{r}/zone{z}", NO_LABELS) for r, z in ((1, 1), (1, 2), (2, 3), (3, 4))]
    failover = {"failover": [{"from": "region1", "to": "region2"}]}
    assert _priorities("region1/zone1", task, failover) == [0, 1, 2, 3]
    assert _priorities("region1/zone1", task) == [0, 1, 2, 2]
    assert _priorities("region1/zone1", task, {"enabled": False}) == [0, 0, 0, 0]


def test_failover_priority_label_ranks() -> None:
    """failoverPriority ranks with the network special case and the key=value form."""
    gateway = {NET: "net-a", CLUSTER: "cluster-1"}
    pairs = [("net-a", "cluster-1"), ("net-a", "cluster-2"), ("net-b", "cluster-1")]
    eps = [("", {NET: n, CLUSTER: c}) for n, c in [*pairs, ("net-b", "cluster-3")]]
    assert _priorities("", eps, {"failoverPriority": [NET, CLUSTER]}, gateway) == [0, 1, 2, 3]
    versions = [("v2", "cluster-1"), ("v2", "cluster-2"), ("v1", "cluster-1"), ("v1", "cluster-2")]
    eps = [("", {"version": v, CLUSTER: c}) for v, c in versions]
    setting = {"failoverPriority": ["version=v2", CLUSTER]}
    assert _priorities("", eps, setting, gateway) == [0, 1, 2, 2]


def test_seed_001_fourteen_pods_table() -> None:
    """Every row: 14 local pods against 14 healthy remote ones (10 keep 100%, 5 give 50/50)."""
    rows = table(LB_DOC, "| Healthy local pods |")
    assert [ints(r[0])[0] for r in rows] == [14, 10, 9, 7, 5, 3, 1, 0]
    for healthy, _, local, remote, _ in rows:
        loads, _ = prio.priority_load([ints(healthy)[0], 14], [0, 0], [14, 14])
        assert loads == (ints(local)[0], ints(remote)[0])
    assert round(100 * 100 / 140, 2) == 71.43
    documented(LB_DOC, "100 / 140 = 71.43 %")


def test_hundred_host_vectors_table() -> None:
    """Every row of Envoy's 100-hosts-per-level table, including the 37/35/28 leftover."""
    rows = table(LB_DOC, "| Healthy % P0 / P1 / P2 |")
    for healthy_cell, loads_cell, _ in rows:
        healthy = ints(healthy_cell)
        loads, _ = prio.priority_load(healthy, [0] * len(healthy), [100] * len(healthy))
        assert list(loads) == ints(loads_cell)
    assert ["25 / 25 / 20", "37 / 35 / 28"] in [r[:2] for r in rows]


def _distribute(local: str, localities: dict[str, int], rule: object) -> dict[str, int]:
    endpoints = [
        EndpointSpec(f"10.0.{i}.{j}", 80, locality=Locality.parse(loc))
        for i, (loc, count) in enumerate(localities.items())
        for j in range(count)
    ]
    setting = dr.LocalityLoadBalancerSetting.model_validate({"distribute": [rule]})
    out = apply_distribute(Locality.parse(local), endpoints, setting.distribute)
    return {str(e.locality): e.locality_weight for e in out}


def test_distribute_examples() -> None:
    """Istio's 70/20/0/10 task, seed 001's 50/50 and the ceil rounding example."""
    to = {"region1/zone1/*": 70, "region1/zone2/*": 20, "region3/zone4/*": 10}
    locs = {"region1/zone1": 1, "region1/zone2": 1, "region2/zone3": 1, "region3/zone4": 1}
    task = _distribute("region1/zone1", locs, {"from": "region1/zone1/*", "to": to})
    assert task == {"region1/zone1": 70, "region1/zone2": 20, "region3/zone4": 10}
    zones = {"sh/2000400001": 14, "sh/200002": 14}
    seed = {"from": "sh/2000400001/*", "to": {"sh/2000400001/*": 50, "sh/200002/*": 50}}
    assert _distribute("sh/2000400001", zones, seed) == {"sh/2000400001": 50, "sh/200002": 50}
    locs = {"region1/zone1": 2, "region1/zone2": 1, "region2/zone1": 1}
    rule = {"from": "*", "to": {"region1/*": 80, "region2/*": 20}}
    weights = _distribute("region1/zone1", locs, rule)
    assert weights == {"region1/zone1": 54, "region1/zone2": 27, "region2/zone1": 20}
    documented(LB_DOC, "ceil(2 \u00d7 80 / 3) = 54", "ceil(14 \u00d7 50 / 14) = 50")


def test_effective_locality_weights_table() -> None:
    """Every row: locality X (weight 1) against a fully healthy Y (weight 2)."""
    rows = table(LB_DOC, "| X healthy |")
    for healthy, weight, share in rows:
        effective = prio.effective_locality_weight(1, ints(healthy)[0], 100)
        assert effective == pytest.approx(float(weight))
        assert f"{100 * effective / (effective + 2):.2f}%".replace(".00%", "%") == share
    assert len(rows) == 6


PANIC = [
    ((5,), (10,), 50, (100,), (False,)),
    ((4,), (10,), 50, (100,), (True,)),
    ((2, 1), (14, 14), 50, (50, 50), (True, True)),
    ((1, 5), (14, 10), 50, (13, 87), (True, False)),
    ((0, 0), (14, 14), 0, (100, 0), (False, False)),
    ((0, 10), (14, 10), 0, (0, 100), (False, False)),
]


def test_panic_examples() -> None:
    """The panic table: partial panic, total panic by host count, threshold 0 never panics."""
    for healthy, total, threshold, loads, panic in PANIC:
        state = prio.evaluate_priorities(list(healthy), [0] * len(total), list(total), threshold)
        assert (state.healthy_load, state.panic, state.total_panic) == (loads, panic, all(panic))
    assert len(table(LB_DOC, "| Situation | Threshold |")) == len(PANIC)
    documented(LB_DOC, "13 / 87", "total panic, 50 / 50", '503 `UH` "no healthy upstream"')


# -- load-balancing.md: outlier detection -------------------------------------------------------


class Detector:
    """An outlier detector over ``count`` hosts that ejects on one 5xx, swept on a 10 s grid."""

    def __init__(self, count: int, base: float = 30.0, percent: int = 100) -> None:
        self.clock = FakeClock(0.0)
        self.policy = OutlierPolicy(1, base_ejection_time=base, max_ejection_percent=percent)
        self.detector = OutlierDetector(self.policy, self.clock, lambda _: None)
        self.hosts = [Host(f"10.0.0.{i}", 80) for i in range(count)]
        self.detector.set_hosts(self.hosts)

    def fail(self, host: Host) -> None:
        assert isinstance(host.monitor, HostMonitor) and host.monitor.record_status(500)
        self.detector.check(host)

    def sweep_until(self, until: float) -> None:
        while self.clock.now + 10.0 <= until:
            self.clock.advance(10.0)
            self.detector.sweep()
        self.clock.now = until

    def sweep_until_back(self, host: Host) -> float:
        while host.ejected:
            self.clock.advance(10.0 - self.clock.now % 10.0)
            self.detector.sweep()
        return self.clock.now


def test_max_ejection_percent_table() -> None:
    """Every row: at most ceil(p*N/100) hosts are ejected, and at least one."""
    for row in table(LB_DOC, "| Hosts N | maxEjectionPercent |"):
        hosts, percent, ejectable = (ints(cell)[0] for cell in row)
        d = Detector(hosts, percent=percent)
        for host in d.hosts:
            d.fail(host)
        assert sum(h.ejected for h in d.hosts) == ejectable


@pytest.mark.parametrize(
    ("base", "durations"),
    [(30.0, [30, 60, 90, 120, 150, 180, 210, 240, 270, 300, 300]), (180.0, [180, 300, 300])],
)
def test_ejection_durations_grow_and_cap(base: float, durations: list[int]) -> None:
    """Back-to-back ejections last base x n, capped at max(300 s, base)."""
    d = Detector(1, base=base)
    seen = []
    for _ in durations:
        start = d.clock.now
        d.fail(d.hosts[0])
        seen.append(d.sweep_until_back(d.hosts[0]) - start)
    assert seen == durations


@pytest.mark.parametrize(("again", "back"), [(35.0, 100.0), (45.0, 80.0)])
def test_backoff_decay_and_tick_rounding(again: float, back: float) -> None:
    """Re-ejected before the next sweep: 60 s, after it: 30 s; base 25 s is back at t = 30 s."""
    d, short = Detector(1), Detector(1, base=25.0)
    short.fail(short.hosts[0])
    d.fail(d.hosts[0])
    assert d.sweep_until_back(d.hosts[0]) == short.sweep_until_back(short.hosts[0]) == 30.0
    d.sweep_until(again)
    d.fail(d.hosts[0])
    assert d.sweep_until_back(d.hosts[0]) == back
    documented(LB_DOC, f"re-ejected at t = {again:g} s", f"back at t = {back:g} s")
    documented(LB_DOC, "With base 25 s and interval 10 s the host is still back at t = 30 s")


def test_error_classes() -> None:
    """Two connect timeouts and a 500 are 3 consecutive 5xx; consecutiveErrors = gateway errors."""
    monitor = HostMonitor(OutlierPolicy(consecutive_5xx=3))
    assert not monitor.record_local(LocalOrigin.TIMEOUT)
    assert not monitor.record_local(LocalOrigin.TIMEOUT)
    assert monitor.record_status(500)
    seed = translate_outlier(dr.OutlierDetection.model_validate({"consecutiveErrors": 3}))
    assert seed is not None and (seed.consecutive_gateway, seed.consecutive_5xx) == (3, 0)
    assert translate_outlier(dr.OutlierDetection()) == OutlierPolicy(consecutive_local_origin=0)
    documented(LB_DOC, "two connect timeouts and then a `500` are three consecutive 5xx errors")


# -- load-balancing.md: spill-over and sticky sessions ------------------------------------------


@dataclass
class StubCluster:
    spec: ClusterSpec
    healthy_hosts: int


def _shares(weights: dict[str, int], dead: set[str], spill: bool = True) -> list[int]:
    """Percent of 20,000 requests each destination gets, rounded to whole percent."""
    stubs = {
        name: StubCluster(
            ClusterSpec(name, "tier2.lab", 8443, name, snap.Discovery.STATIC, (), spillover=spill),
            0 if name in dead else 1,
        )
        for name in weights
    }
    action = RouteAction.build(tuple(Weighted(n, w, "tier2.lab") for n, w in weights.items()))
    rng, req = random.Random(7), RequestHead(b"GET", b"/", b"", b"b.example.com", b"http", 80, [])
    clusters = cast("dict[str, Cluster]", stubs)
    picks = Counter(
        choose_target(action, clusters, rng, b"k", req)[0].cluster for _ in range(20000)
    )
    return [round(100 * picks[name] / 20000) for name in weights]


def test_spillover_table() -> None:
    """The lab's 50/25/25 spill-over table, 80/20, and the per-role defaults (tier1 on)."""
    lab = {"cluster-1": 50, "cluster-2": 25, "cluster-3": 25}
    for dead_cell, *expected in table(LB_DOC, "| Dead clusters |"):
        if dead_cell == "all":
            continue
        dead = set() if dead_cell == "none" else set(dead_cell.split(" and "))
        got = _shares(lab, dead)
        assert all(abs(g - ints(e)[0]) <= 1 for g, e in zip(got, expected, strict=True))
        assert all(got[i] == 0 for i, name in enumerate(lab) if name in dead)
    assert _shares({"a": 80, "b": 20}, {"a"}) == [0, 100]
    assert abs(_shares(lab, {"cluster-1"}, spill=False)[0] - 50) <= 1
    assert (tier1_gateway.cli.ROLE.spillover, tier1_gateway.cli.ROLE.xff_trusted_hops) == (True, 0)
    assert (tier2_gateway.cli.ROLE.spillover, tier2_gateway.cli.ROLE.xff_trusted_hops) == (False, 1)


def test_sticky_cookie_format_and_forgery() -> None:
    """The documented SUBSET and HOST cookies verify; other keys and forgeries are refused."""
    subset = snap.StickyPolicy("gw-affinity", "/", 3600.0, target_subset=True)
    destination = "outbound|8443|cluster-2|tier2.lab"
    header = sticky.set_cookie(subset, b"lab-secret", destination).decode()
    host_header = sticky.set_cookie(
        snap.StickyPolicy("gw-affinity"), b"lab-secret", "10.0.2.11:9080"
    )
    documented(LB_DOC, f"set-cookie: {header}", f"set-cookie: {host_header.decode()}")
    value = re.match(r"gw-affinity=([^;]+);", header)
    assert value is not None
    assert sticky.verify(b"lab-secret", value.group(1)) == destination
    assert sticky.verify(b"other-secret", value.group(1)) is None
    assert sticky.verify(b"lab-secret", sticky.sign(b"guess", destination)) is None


def test_sticky_secret_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The secret comes from --sticky-secret-file (stripped), else $GATEWAY_STICKY_SECRET."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"  shared-key\n")
    monkeypatch.setenv("GATEWAY_STICKY_SECRET", "from-env")
    assert _sticky_secret(str(secret_file)) == b"shared-key"
    assert _sticky_secret(None) == b"from-env"
    monkeypatch.delenv("GATEWAY_STICKY_SECRET")
    assert _sticky_secret(None) == b""
    documented(LB_DOC, "`GATEWAY_STICKY_SECRET`", "--sticky-secret-file PATH")
