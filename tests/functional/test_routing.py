"""Functional: Istio VirtualService semantics through the real data path (sockets, parser, router).

Match tests answer with ``directResponse`` bodies naming the rule, so each case shows exactly
which rule matched; action tests forward to demo echo pods, which report what they received.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import (
    config,
    get,
    lab_certs,
    send_raw,
    tls_gateway_yaml,
)


def _direct(name: str) -> str:
    return f"directResponse: {{status: 200, body: {{string: {name}}}}}"


def _match_rules(gw_port: int) -> str:
    rules = [
        ("{uri: {exact: /exact}}", "exact"),
        ("{uri: {prefix: /pre}}", "prefix"),
        ('{uri: {regex: "/re/[0-9]+"}}', "regex"),
        ("{uri: {exact: /CaSe}, ignoreUriCase: true}", "nocase"),
        ("{uri: {prefix: /Sens}}", "sens"),
        ("{uri: {prefix: /h}, headers: {x-exact: {exact: 'yes'}}}", "h-exact"),
        ("{uri: {prefix: /h}, headers: {x-prefix: {prefix: ab}}}", "h-prefix"),
        ('{uri: {prefix: /h}, headers: {x-regex: {regex: "v[0-9]"}}}', "h-regex"),
        ("{uri: {prefix: /h}, headers: {x-present: {}}}", "h-present"),
        ("{uri: {prefix: /w}, withoutHeaders: {x-block: {}}}", "without"),
        ("{uri: {prefix: /w}}", "w-fallback"),
        ("{uri: {prefix: /q}, queryParams: {a: {exact: '1'}}}", "query"),
        ("{uri: {prefix: /q}, queryParams: {r: {regex: '[a-c]+'}}}", "query-regex"),
        ("{uri: {prefix: /m}, method: {exact: POST}}", "post"),
        ("{uri: {prefix: /m}}", "m-any"),
        ("{uri: {prefix: /auth}, authority: {exact: a.example}}", "authority"),
        ("{uri: {prefix: /auth}, authority: {prefix: b.}}", "authority-prefix"),
        ("{uri: {prefix: /port}, port: 1}", "port-1"),
        (f"{{uri: {{prefix: /port}}, port: {gw_port}}}", "port-listener"),
        ("{uri: {prefix: /order}}", "order-first"),
        ("{uri: {prefix: /order/x}}", "order-second"),
        ("{uri: {exact: /or1}}, {uri: {exact: /or2}}", "or"),
        ("{uri: {exact: /and}, method: {exact: GET}, headers: {x-and: {exact: '1'}}}", "and"),
        ("{uri: {exact: /scheme}, scheme: {exact: http}}", "scheme"),
    ]
    return "\n".join(f"  - match: [{m}]\n    {_direct(name)}" for m, name in rules)


MATCH_CASES: list[tuple[str, str, dict[str, str], str]] = [
    # method, target, headers, expected rule (or "404")
    ("GET", "/exact", {}, "exact"),
    ("GET", "/exact/", {}, "404"),
    ("GET", "/exact?x=1", {}, "exact"),
    ("GET", "/pre", {}, "prefix"),
    ("GET", "/prefix", {}, "prefix"),  # Istio's prefix is a raw string prefix
    ("GET", "/pre/a/b", {}, "prefix"),
    ("GET", "/pr", {}, "404"),
    ("GET", "/re/123", {}, "regex"),
    ("GET", "/re/123x", {}, "404"),  # regexes are full matches
    ("GET", "/x/re/1", {}, "404"),
    ("GET", "/case", {}, "nocase"),
    ("GET", "/CASE", {}, "nocase"),
    ("GET", "/sens", {}, "404"),  # without ignoreUriCase the match is case-sensitive
    ("GET", "/Sensible", {}, "sens"),
    ("GET", "/h", {"X-Exact": "yes"}, "h-exact"),  # header names are case-insensitive
    ("GET", "/h", {"x-exact": "YES"}, "404"),  # values are not
    ("GET", "/h", {"x-prefix": "abc"}, "h-prefix"),
    ("GET", "/h", {"x-prefix": "xab"}, "404"),
    ("GET", "/h", {"x-regex": "v7"}, "h-regex"),
    ("GET", "/h", {"x-regex": "v77"}, "404"),
    ("GET", "/h", {"x-present": ""}, "h-present"),
    ("GET", "/h", {"x-present": "anything"}, "h-present"),
    ("GET", "/h", {}, "404"),
    ("GET", "/w", {}, "without"),
    ("GET", "/w", {"x-block": "1"}, "w-fallback"),
    ("GET", "/q?a=1", {}, "query"),
    ("GET", "/q?b=2&a=1", {}, "query"),
    ("GET", "/q?a=2", {}, "404"),
    ("GET", "/q?A=1", {}, "404"),  # parameter names are case-sensitive
    ("GET", "/q?r=abca", {}, "query-regex"),
    ("GET", "/q?r=abcd", {}, "404"),
    ("POST", "/m", {}, "post"),
    ("GET", "/m", {}, "m-any"),
    ("GET", "/auth", {"Host": "a.example"}, "authority"),
    ("GET", "/auth", {"Host": "b.example"}, "authority-prefix"),
    ("GET", "/auth", {"Host": "c.example"}, "404"),
    ("GET", "/port", {}, "port-listener"),
    ("GET", "/order/x", {}, "order-first"),  # first match wins, not the longest
    ("GET", "/or1", {}, "or"),
    ("GET", "/or2", {}, "or"),
    ("GET", "/and", {"x-and": "1"}, "and"),
    ("POST", "/and", {"x-and": "1"}, "404"),
    ("GET", "/and", {"x-and": "2"}, "404"),
    ("GET", "/scheme", {}, "scheme"),
]


async def _ask(port: int, method: str, target: str, headers: dict[str, str]) -> str:
    headers = {"Host": "h", **headers}
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines.append("Content-Length: 0")
    (resp,), _ = await send_raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode(), close_wait=0)
    return "404" if resp.status == 404 else resp.body.decode()


async def test_match_conditions_and_first_match_order(gateway: Callable[..., Any]) -> None:
    """uri exact/prefix/regex, ignoreUriCase, headers, withoutHeaders, queryParams, method,
    authority, port and scheme select rules with Istio semantics; the first match wins."""
    port = free_port()
    await gateway(config(port, _match_rules(port), {}))
    got = {}
    for method, target, headers, _ in MATCH_CASES:
        got[(method, target, tuple(headers.items()))] = await _ask(port, method, target, headers)
    expected = {(m, t, tuple(h.items())): want for m, t, h, want in MATCH_CASES}
    assert got == expected


async def test_no_route_is_404_with_short_local_body(gateway: Callable[..., Any]) -> None:
    """A request matching no rule gets 404 from the gateway with a short text body."""
    port = free_port()
    await gateway(config(port, "  - match: [{uri: {exact: /only}}]\n    " + _direct("x"), {}))
    resp = await get(port, "/other")
    assert resp.status == 404
    assert resp.body == b"no route matched this request\n"
    assert resp.header(b"content-length") == b"%d" % len(resp.body)


async def test_virtual_host_selection_by_authority(gateway: Callable[..., Any]) -> None:
    """VirtualServices bind by host: exact, then *.suffix wildcard; others are 404."""
    port = free_port()
    vs2 = f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: wild}}
spec:
  hosts: ["*.example.com"]
  gateways: [gw]
  http:
  - {_direct("wildcard")}
"""
    await gateway(
        config(port, "  - " + _direct("exact"), {}, vs_hosts="[api.example.com]", extra=vs2)
    )
    assert (await get(port, "/", host="api.example.com")).body == b"exact"
    assert (await get(port, "/", host="API.Example.COM:80")).body == b"exact"
    assert (await get(port, "/", host="www.example.com")).body == b"wildcard"
    assert (await get(port, "/", host="example.com")).status == 404


REDIRECT_RULES = """\
  - match: [{uri: {prefix: /r/code}}]
    redirect: {uri: /new, redirectCode: 302}
  - match: [{uri: {prefix: /r/query}}]
    redirect: {uri: "/new?b=2"}
  - match: [{uri: {prefix: /r/auth}}]
    redirect: {authority: new.example}
  - match: [{uri: {prefix: /r/port}}]
    redirect: {port: 8443}
  - match: [{uri: {prefix: /r/derive}}]
    redirect: {scheme: https, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {prefix: /r/default}}]
    redirect: {derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {prefix: /r/scheme}}]
    redirect: {scheme: https}
  - match: [{uri: {prefix: /r/all}}]
    redirect: {scheme: https, authority: "x.example:9443", uri: /z, redirectCode: 308}
"""


async def test_redirects(gateway: Callable[..., Any]) -> None:
    """redirect: code (default 301), uri (query kept unless replaced), authority, port,
    derivePort and scheme build the Location as Envoy does."""
    port = free_port()
    await gateway(config(port, REDIRECT_RULES, {}))
    cases = [
        ("/r/code?a=1", "h", 302, "http://h/new?a=1"),
        ("/r/code", "h:8080", 302, "http://h:8080/new"),
        ("/r/query?a=1", "h", 301, "http://h/new?b=2"),
        ("/r/auth/x", "h:8080", 301, "http://new.example/r/auth/x"),
        ("/r/port", "h", 301, "http://h:8443/r/port"),
        ("/r/derive", "h", 301, f"https://h:{port}/r/derive"),
        ("/r/default", "h:8080", 301, "http://h/r/default"),
        ("/r/scheme?q", "h:8080", 301, "https://h/r/scheme?q"),
        ("/r/all", "h", 308, "https://x.example:9443/z"),
    ]
    got = []
    for target, host, _, _ in cases:
        resp = await get(port, target, host=host)
        got.append((target, host, resp.status, (resp.header(b"location") or b"").decode()))
    assert got == cases


async def test_https_redirect_uses_https_server_port(
    gateway: Callable[..., Any], tmp_path: Path
) -> None:
    """tls.httpsRedirect answers 301 to https://host[:port]/path?query: the HTTPS server's port
    when the client addressed a non-default port, none for port 80."""
    http_port, https_port = free_port(), free_port()
    cert_dir = lab_certs(tmp_path / "certs")
    await gateway(tls_gateway_yaml(http_port, https_port, redirect=True), cert_dir=str(cert_dir))
    resp = await get(http_port, "/a/b?c=1", host=f"bookinfo.example.com:{http_port}")
    assert resp.status == 301
    assert resp.header(b"location") == b"https://bookinfo.example.com:%d/a/b?c=1" % https_port
    resp = await get(http_port, "/x", host="bookinfo.example.com")
    assert resp.header(b"location") == b"https://bookinfo.example.com/x"


async def test_rewrites(pods: Callable[..., Any], gateway: Callable[..., Any]) -> None:
    """rewrite.uri replaces the matched prefix (or the whole exact path), uriRegexRewrite
    substitutes capture groups, rewrite.authority changes Host; the query is kept."""
    pod = await pods("echo")
    rules = """\
  - match: [{uri: {prefix: /api/v1}}]
    rewrite: {uri: /v2}
    route: [{destination: {host: echo.svc}}]
  - match: [{uri: {exact: /old}}]
    rewrite: {uri: /brand/new}
    route: [{destination: {host: echo.svc}}]
  - match: [{uri: {prefix: /rx}}]
    rewrite: {uriRegexRewrite: {match: "^/rx/([^/]+)/(.*)$", rewrite: "/\\\\2/\\\\1"}}
    route: [{destination: {host: echo.svc}}]
  - match: [{uri: {prefix: /host}}]
    rewrite: {authority: new.example}
    route: [{destination: {host: echo.svc}}]
"""
    port = free_port()
    await gateway(config(port, rules, {"echo.svc": [pod.port]}))
    seen = {}
    for target in ("/api/v1/users?x=1", "/old", "/rx/a/b/c", "/host/p"):
        body = (await get(port, target)).json()
        seen[target] = (body["path"], body["query"], body["host"])
    assert seen == {
        "/api/v1/users?x=1": ("/v2/users", {"x": "1"}, "h"),
        "/old": ("/brand/new", {}, "h"),
        "/rx/a/b/c": ("/b/c/a", {}, "h"),
        "/host/p": ("/host/p", {}, "new.example"),
    }


async def test_direct_response(gateway: Callable[..., Any]) -> None:
    """directResponse answers with its status and body; HEAD gets the headers only."""
    port = free_port()
    rules = "  - directResponse: {status: 418, body: {string: teapot}}"
    await gateway(config(port, rules, {}))
    resp = await get(port, "/any")
    assert (resp.status, resp.body) == (418, b"teapot")
    (head,), _ = await send_raw(
        port, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", head=True, close_wait=0
    )
    assert head.status == 418
    assert head.header(b"content-length") == b"6"


HEADER_RULES = """\
  - headers:
      request: {set: {x-set: rule}, add: {x-add: rule}, remove: [x-remove]}
      response: {set: {x-resp-set: rule}, add: {x-resp-add: rule}, remove: [x-demo-pod]}
    route:
    - destination: {host: echo.svc}
      headers:
        request: {set: {x-dest: d1}, remove: [x-dest-remove]}
        response: {set: {x-resp-dest: d1}, remove: [x-demo-version]}
"""


async def test_header_operations(pods: Callable[..., Any], gateway: Callable[..., Any]) -> None:
    """Request and response headers set/add/remove apply at rule and destination level: set
    replaces, add appends a value, remove deletes (names case-insensitive)."""
    pod = await pods("echo")
    port = free_port()
    await gateway(config(port, HEADER_RULES, {"echo.svc": [pod.port]}))
    resp = await get(
        port,
        "/",
        headers={
            "X-Set": "client",
            "X-Add": "client",
            "X-Remove": "gone",
            "X-Dest-Remove": "gone",
            "X-Dest": "client",
        },
    )
    sent = {k.lower(): v for k, v in resp.json()["headers"].items()}
    assert sent["x-set"] == "rule"
    assert sent["x-add"] == "client, rule"
    assert sent["x-dest"] == "d1"
    assert "x-remove" not in sent
    assert "x-dest-remove" not in sent
    assert resp.header(b"x-resp-set") == b"rule"
    assert resp.all(b"x-resp-add") == [b"rule"]
    assert resp.header(b"x-resp-dest") == b"d1"
    assert resp.header(b"x-demo-pod") is None
    assert resp.header(b"x-demo-version") is None
    assert resp.header(b"x-demo-cluster") == b"cluster1"


async def test_weighted_split(pods: Callable[..., Any], gateway: Callable[..., Any]) -> None:
    """Weights 70/30/0 split 1000 requests within ±5 points; a zero weight gets nothing."""
    a, b, c = await pods("echo", pod="a"), await pods("echo", pod="b"), await pods("echo", pod="c")
    rules = """\
  - route:
    - {destination: {host: a.svc}, weight: 70}
    - {destination: {host: b.svc}, weight: 30}
    - {destination: {host: c.svc}, weight: 0}
"""
    port = free_port()
    services = {"a.svc": [a.port], "b.svc": [b.port], "c.svc": [c.port]}
    await gateway(config(port, rules, services))
    counts: collections.Counter[str] = collections.Counter()
    connector = aiohttp.TCPConnector(limit=10)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.get(f"http://127.0.0.1:{port}/") as r:
                counts[r.headers["x-demo-pod"]] += 1

        await asyncio.gather(*(one() for _ in range(1000)))
    assert sum(counts.values()) == 1000
    assert 650 <= counts["a"] <= 750
    assert 250 <= counts["b"] <= 350
    assert counts["c"] == 0
