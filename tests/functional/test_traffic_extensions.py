"""Functional: this project's traffic extensions beyond Istio, through a real gateway.

* spill-over: a weighted destination without any healthy host hands its share to the others;
* signed sticky cookies: the cookie names the destination (host or subset), is honoured while
  that destination is healthy, survives other replicas with the same secret, and cannot be forged.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import config


def _weighted_config(port: int, a: int, b: int, spillover: bool | None) -> str:
    rules = """  - route:
    - {destination: {host: app-a.local}, weight: 80}
    - {destination: {host: app-b.local}, weight: 20}"""
    extra = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: app-a}
spec:
  host: app-a.local
  trafficPolicy:
    outlierDetection:
      {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
"""
    if spillover is not None:
        extra += f"""---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {{name: app-a}}
spec:
  host: app-a.local
  spillover: {{enabled: {str(spillover).lower()}}}
"""
    return config(port, rules, {"app-a.local": [a], "app-b.local": [b]}, extra=extra)


async def _eject_a(url: str, admin: str, session: aiohttp.ClientSession) -> None:
    """Send until the failing pod of app-a is ejected (outlier detection decides)."""
    for _ in range(50):
        async with session.get(url) as r:
            await r.read()
        async with session.get(admin + "/clusters") as r:
            state = await r.json()
        a = state["outbound|80||app-a.local"]
        if a["hosts"][0]["ejected"]:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the failing host was never ejected")


async def _count(url: str, session: aiohttp.ClientSession, n: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        async with session.get(url) as r:
            if r.status == 200:
                seen[(await r.json())["pod"]] += 1
            else:
                await r.read()
                seen[f"status {r.status}"] += 1
    return seen


async def _split_with_a_dead(
    pods: Callable[..., Any], gateway: Callable[..., Any], spillover: bool, n: int
) -> collections.Counter[str]:
    """80/20 between app-a and app-b; app-a's only pod fails and is ejected; then ``n``
    requests are counted by the pod (or status) that answered."""
    a, b = await pods("echo", pod="a-1"), await pods("echo", pod="b-1")
    port = free_port()
    gw = await gateway(_weighted_config(port, a.port, b.port, spillover=spillover))
    url = f"http://127.0.0.1:{port}/echo"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"http://127.0.0.1:{a.port}/admin/fail?status=503") as r:
            assert r.status == 200
        await _eject_a(url, gw.admin, s)
        return await _count(url, s, n)


async def test_spillover_moves_a_dead_destinations_share(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """80/20 split, every host of the 80 ejected: with spill-over all requests reach the 20."""
    seen = await _split_with_a_dead(pods, gateway, spillover=True, n=200)
    assert seen == {"b-1": 200}


async def test_without_spillover_the_dead_share_fails_as_in_istio(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """Spill-over off: about 80% get 503 (no healthy upstream), Istio's behaviour."""
    seen = await _split_with_a_dead(pods, gateway, spillover=False, n=400)
    assert set(seen) == {"b-1", "status 503"}
    assert 0.72 <= seen["status 503"] / 400 <= 0.88, seen


def _sticky_config(port: int, pod_ports: list[int], target: str) -> str:
    if target == "HOST":
        rules = "  - route: [{destination: {host: app.local}}]"
    else:
        rules = """  - route:
    - {destination: {host: app.local, subset: v1}, weight: 50}
    - {destination: {host: app.local, subset: v2}, weight: 50}"""
    extra = f"""---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: app}}
spec:
  host: app.local
  trafficPolicy:
    loadBalancer: {{simple: ROUND_ROBIN}}
    outlierDetection:
      {{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: gateway.multicluster.dev/v1alpha1
kind: DestinationPolicy
metadata: {{name: app}}
spec:
  host: app.local
  stickySession:
    cookie: {{name: gw-sticky, ttl: 1h}}
    target: {target}
"""
    labels = [{"version": f"v{i % 2 + 1}"} for i in range(len(pod_ports))]
    return config(port, rules, {"app.local": pod_ports}, extra=extra, labels={"app.local": labels})


def _cookie(resp: aiohttp.ClientResponse) -> str | None:
    for value in resp.headers.getall("set-cookie", []):
        if value.startswith("gw-sticky="):
            return value.split(";", 1)[0].split("=", 1)[1]
    return None


async def _get(url: str, cookie: str | None) -> tuple[str, str | None]:
    headers = {"cookie": f"gw-sticky={cookie}"} if cookie else {}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        assert r.status == 200
        return (await r.json())["pod"], _cookie(r)


async def test_host_cookie_pins_the_pod_across_replicas_and_resists_forgery(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """The HOST cookie pins one pod on two replicas sharing the secret; a forged one is ignored."""
    handles = [await pods("echo", pod=f"p{i}") for i in range(3)]
    ports = [free_port(), free_port()]
    config = [_sticky_config(p, [h.port for h in handles], "HOST") for p in ports]
    await gateway(config[0], sticky_secret=b"shared-secret")
    await gateway(config[1], sticky_secret=b"shared-secret")
    url1, url2 = (f"http://127.0.0.1:{p}/echo" for p in ports)
    pod, cookie = await _get(url1, None)
    assert cookie is not None
    pinned = {(await _get(url1 if i % 2 else url2, cookie))[0] for i in range(20)}
    assert pinned == {pod}, "both replicas honour the same signed cookie"
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    seen_forged = [await _get(url1, forged) for _ in range(6)]
    assert len({p for p, _ in seen_forged}) > 1, "a forged cookie must not pin anything"
    assert all(c is not None and c != forged for _, c in seen_forged), "a new cookie is issued"


async def test_host_cookie_falls_back_when_its_pod_is_gone(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """When the pinned pod is ejected the request goes elsewhere and the cookie is re-issued."""
    handles = [await pods("echo", pod=f"p{i}") for i in range(3)]
    port = free_port()
    await gateway(_sticky_config(port, [h.port for h in handles], "HOST"), sticky_secret=b"k")
    url = f"http://127.0.0.1:{port}/echo"
    pod, cookie = await _get(url, None)
    victim = next(h for h in handles if f"p{handles.index(h)}" == pod)
    fail = f"http://127.0.0.1:{victim.port}/admin/fail?status=503"
    async with aiohttp.ClientSession() as s, s.post(fail) as r:
        assert r.status == 200
    # The first request hits the failing pod: its 503 ejects the pod and reaches the client
    # (Istio 1.24+ retries no 503 by default). The next one goes elsewhere.
    pinned = {"cookie": f"gw-sticky={cookie}"}
    async with aiohttp.ClientSession() as s, s.get(url, headers=pinned) as r:
        assert r.status == 503
    moved, new_cookie = await _get(url, cookie)
    assert moved != pod
    assert new_cookie is not None and new_cookie != cookie
    again = {(await _get(url, new_cookie))[0] for _ in range(10)}
    assert again == {moved}


async def test_subset_cookie_pins_the_weighted_destination(
    pods: Callable[..., Any], gateway: Callable[..., Any]
) -> None:
    """SUBSET mode: a 50/50 split stays on the subset named by the cookie."""
    handles = [await pods("echo", pod=f"p{i}", version=f"v{i % 2 + 1}") for i in range(4)]
    port = free_port()
    await gateway(_sticky_config(port, [h.port for h in handles], "SUBSET"), sticky_secret=b"k")
    url = f"http://127.0.0.1:{port}/echo"
    first_pod, cookie = await _get(url, None)
    assert cookie is not None
    versions = collections.Counter()
    for _ in range(20):
        async with (
            aiohttp.ClientSession() as s,
            s.get(url, headers={"cookie": f"gw-sticky={cookie}"}) as r,
        ):
            versions[(await r.json())["version"]] += 1
    wanted = "v1" if int(first_pod[1]) % 2 == 0 else "v2"
    assert versions == {wanted: 20}
