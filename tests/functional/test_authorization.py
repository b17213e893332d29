"""Functional: AuthorizationPolicy through a real gateway on loopback.

Denials are Envoy's (403, ``RBAC: access denied``) and never reach the upstream; hosts,
methods, paths (after the gateway's path normalisation) and ports are matched as Istio does;
``remoteIpBlocks`` reads X-Forwarded-For within the trusted hops; the decisions are counted per
policy; ``explain`` (admin) names the policy and rule that decided; a reload applies new
policies to the next request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from gateway_core.security.authz import AuthorizationFilter
from tests.conftest import free_port
from tests.functional.support import (
    capture_upstream,
    config,
    get,
    metric_samples,
    send_raw,
)

AP = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"

POLICIES = f"""---
{AP}metadata: {{name: public-only, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  action: ALLOW
  rules:
  - to:
    - operation:
        hosts: [app.example.com]
        methods: [GET, HEAD]
        paths: ["/public/*", "*.css"]
---
{AP}metadata: {{name: no-secrets, namespace: istio-system}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{paths: ["/public/secret*"]}}}}]
---
{AP}metadata: {{name: other-gateways, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: egressgateway}}}}
  action: DENY
  rules: [{{}}]
"""

LABELS = {"istio": "ingressgateway"}


def _rules() -> str:
    return "  - route:\n    - destination: {host: app.local}"


async def _status(port: int, target: str, *, host: str = "app.example.com", **kw: Any) -> int:
    return (await get(port, target, host=host, **kw)).status


async def test_denials_are_403_rbac_and_never_reach_the_upstream(
    gateway: Callable[..., Any],
) -> None:
    async with capture_upstream() as up:
        port = free_port()
        gw = await gateway(
            config(port, _rules(), {"app.local": [up.port]}, extra=POLICIES), labels=LABELS
        )
        resp = await get(port, "/private", host="app.example.com")
        assert resp.status == 403
        assert resp.body == b"RBAC: access denied"
        assert up.requests == []
        ok = await get(port, "/public/page", host="app.example.com")
        assert ok.status == 200 and len(up.requests) == 1
        # hosts ignore case; methods and paths are exact, prefix or suffix.
        assert await _status(port, "/public/x", host="APP.Example.com") == 200
        assert await _status(port, "/theme/site.css") == 200
        assert await _status(port, "/public/x", host="other.example.com") == 403
        assert await _status(port, "/public") == 403
        post = b"POST /public/x HTTP/1.1\r\nHost: app.example.com\r\ncontent-length: 0\r\n\r\n"
        (posted,), _ = await send_raw(port, post, close_wait=0)
        assert posted.status == 403
        # DENY wins over the matching ALLOW rule.
        assert await _status(port, "/public/secret/key") == 403
        # Paths are compared after normalisation, as routing sees them.
        assert await _status(port, "/public/../private") == 403
        assert await _status(port, "/private/../public/x") == 200
        assert await _status(port, "/public/%73ecret") == 403
        assert len(up.requests) == 4

        samples = await metric_samples(gw.admin)
        rq = "gateway_authz_requests_total"
        allowed = (("decision", "allowed"), ("policy", "istio-system/public-only"))
        assert samples[(rq, allowed)] == 4
        by_deny = (("decision", "denied"), ("policy", "istio-system/no-secrets"))
        assert samples[(rq, by_deny)] == 2
        unmatched = (("decision", "denied"), ("policy", "none"))
        assert samples[(rq, unmatched)] == 5
        assert not any("egressgateway" in str(k) or "other-gateways" in str(k) for k in samples)
        async with aiohttp.ClientSession() as session, session.get(gw.admin + "/config_dump") as r:
            dump = await r.json()
        assert dump["authorization"] == [
            {"policy": "istio-system/no-secrets", "action": "DENY", "rules": 1,
             "reads_request_auth": False},
            {"policy": "istio-system/public-only", "action": "ALLOW", "rules": 1,
             "reads_request_auth": False},
        ]  # fmt: skip


async def test_remote_ip_blocks_read_x_forwarded_for_within_the_trusted_hops(
    gateway: Callable[..., Any],
) -> None:
    policies = f"""---
{AP}metadata: {{name: office, namespace: istio-system}}
spec:
  rules:
  - from: [{{source: {{remoteIpBlocks: ["203.0.113.0/24"], ipBlocks: ["127.0.0.1"]}}}}]
"""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(
            config(port, _rules(), {"app.local": [up.port]}, extra=policies), xff_trusted_hops=1
        )

        async def via(xff: str | None) -> int:
            headers = {"X-Forwarded-For": xff} if xff is not None else {}
            return await _status(port, "/", headers=headers)

        assert await via("203.0.113.7") == 200
        assert await via("198.51.100.1") == 403
        # The trusted proxy appends the address it saw: a client cannot spoof the left part.
        assert await via("203.0.113.7, 198.51.100.1") == 403
        assert await via("198.51.100.1, 203.0.113.9") == 200
        # Without the header the peer address is the remote address.
        assert await via(None) == 403


async def test_ports_and_destination_port(gateway: Callable[..., Any]) -> None:
    policies = f"""---
{AP}metadata: {{name: by-port, namespace: istio-system}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{notPorts: ["{{allowed}}"]}}}}]
"""
    async with capture_upstream() as up:
        port, second = free_port(), free_port()
        extra = f'  - port: {{number: {second}, name: http2, protocol: HTTP}}\n    hosts: ["*"]\n'
        text = config(port, _rules(), {"app.local": [up.port]}, extra=policies)
        text = text.replace("{allowed}", str(second))
        text = text.replace('    hosts: ["*"]\n', '    hosts: ["*"]\n' + extra, 1)
        await gateway(text)
        assert await _status(port, "/") == 403
        assert await _status(second, "/") == 200


async def test_admin_explain_names_the_policy_and_rule(gateway: Callable[..., Any]) -> None:
    async with capture_upstream() as up:
        port = free_port()
        gw = await gateway(
            config(port, _rules(), {"app.local": [up.port]}, extra=POLICIES), labels=LABELS
        )

        def explain(path: str) -> dict[str, Any]:
            # The Host header as a client sends it for port 80 (Istio matches it as sent).
            query = urllib.parse.urlencode(
                {"url": f"http://app.example.com:{port}{path}", "header": "Host: app.example.com"}
            )
            with urllib.request.urlopen(f"{gw.admin}/explain?{query}", timeout=5) as resp:
                data: dict[str, Any] = json.load(resp)
            return data

        loop = asyncio.get_running_loop()
        denied = await loop.run_in_executor(None, explain, "/public/secret")
        assert denied["authorization"] == (
            "denied (403 RBAC: access denied) by policy istio-system/no-secrets rules[0]"
        )
        assert denied["status"] == 403 and denied["route"] is None
        allowed = await loop.run_in_executor(None, explain, "/public/a")
        assert allowed["authorization"] == "allowed by policy istio-system/public-only rules[0]"
        assert allowed["route"] is not None
        none = await loop.run_in_executor(None, explain, "/nothing")
        assert none["authorization"].startswith("denied (403 RBAC: access denied): ALLOW")


async def test_no_policy_means_no_filter_and_a_reload_adds_one(
    gateway: Callable[..., Any],
) -> None:
    async with capture_upstream() as up:
        port = free_port()
        base = config(port, _rules(), {"app.local": [up.port]})
        gw = await gateway(base)
        assert _authz_filters(gw) == []
        assert await _status(port, "/x") == 200
        gw.write_config(base + f"---\n{AP}metadata: {{name: deny-all}}\nspec: {{}}\n")
        deadline = asyncio.get_running_loop().time() + 10
        while await _status(port, "/x") != 403:
            assert asyncio.get_running_loop().time() < deadline, "the reload never applied"
            await asyncio.sleep(0.05)
        assert len(_authz_filters(gw)) == 1


async def test_audit_counts_and_logs_without_changing_the_outcome(
    gateway: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    audit = f"""---
{AP}metadata: {{name: watch-admin, namespace: istio-system}}
spec:
  action: AUDIT
  rules: [{{to: [{{operation: {{paths: ["/admin*"]}}}}]}}]
"""
    async with capture_upstream() as up:
        port = free_port()
        gw = await gateway(config(port, _rules(), {"app.local": [up.port]}, extra=audit))
        with caplog.at_level(logging.INFO, logger="gateway.authz"):
            assert await _status(port, "/admin/x") == 200
            assert await _status(port, "/other") == 200
        assert len(up.requests) == 2
        logged = [r.getMessage() for r in caplog.records if r.name == "gateway.authz"]
        assert logged == ["AUDIT policy istio-system/watch-admin rules[0] matched GET /admin/x"]
        samples = await metric_samples(gw.admin)
        audited = ("gateway_authz_audited_total", (("policy", "istio-system/watch-admin"),))
        assert samples[audited] == 1
        none = (("decision", "allowed"), ("policy", "none"))
        assert samples[("gateway_authz_requests_total", none)] == 2


async def test_grpc_denial_is_permission_denied(gateway: Callable[..., Any]) -> None:
    """A gRPC client gets a trailers-only PERMISSION_DENIED (7) with Envoy's message."""
    async with capture_upstream() as up:
        port = free_port()
        await gateway(
            config(port, _rules(), {"app.local": [up.port]}, extra=POLICIES), labels=LABELS
        )
        grpc = {"content-type": "application/grpc", "te": "trailers", "host": "app.example.com"}
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{port}/pkg.Svc/Call", data=b"\0" * 5, headers=grpc) as r,
        ):
            assert r.status == 200
            assert r.headers["grpc-status"] == "7"
            # grpc-message is percent-encoded; clients decode it.
            assert urllib.parse.unquote(r.headers["grpc-message"]) == "RBAC: access denied"
            assert await r.read() == b""
        assert up.requests == []


def _authz_filters(gw: Any) -> list[object]:
    """The authorization elements of the live gateway-wide chain (the loop guard is always
    there)."""
    chain = gw.gateway.runtime.snapshot.gateway_filters
    return [f for f in chain if isinstance(f, AuthorizationFilter)]
