"""Hot reload under load: 20 config changes (weights, one invalid file), nothing dropped.

A real ``tier2-gateway`` process serves two demo pods (v1 and v2) while a load loop counts every
request. The config file is rewritten 20 times; each change must go live (the admin version
moves), the invalid one must be rejected whole with the old config serving, and no request may
fail because of a reload.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import free_port
from tests.functional.support import config
from tests.gateway_core.server.ops_testkit import (
    GatewayProcess,
    admin_json,
    constant_load,
    wait_for,
)

SUBSETS = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: app}
spec:
  host: app.local
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""


def weighted_config(port: int, pods: dict[str, int], w1: int, w2: int) -> str:
    """``w1``/``w2`` between subsets v1 and v2 of app.local, one pod each."""
    rules = f"""  - route:
    - {{destination: {{host: app.local, subset: v1}}, weight: {w1}}}
    - {{destination: {{host: app.local, subset: v2}}, weight: {w2}}}"""
    return config(
        port,
        rules,
        {"app.local": [pods["v1"], pods["v2"]]},
        labels={"app.local": [{"version": "v1"}, {"version": "v2"}]},
        extra=SUBSETS,
    )


async def test_twenty_reloads_under_load_drop_nothing(
    tmp_path: Path, pods: Callable[..., Any], measured: Callable[[str], None]
) -> None:
    """20 reloads (one invalid) under constant load: zero non-2xx, new weights take effect."""
    v1 = await pods("echo", version="v1", pod="pod-v1")
    v2 = await pods("echo", version="v2", pod="pod-v2")
    ports = {"v1": v1.port, "v2": v2.port}
    port, admin = free_port(), free_port()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(weighted_config(port, ports, 100, 0))
    gw = GatewayProcess("tier2", [cfg], admin, tmp_path / "gw.log", "--bind-address", "127.0.0.1")
    try:
        await gw.wait_ready()
        versions_seen = [str((await admin_json(gw, "/config_dump"))["version"])]
        async with constant_load(
            f"http://127.0.0.1:{port}/echo", workers=6, max_requests=500_000, max_seconds=90
        ) as load:
            for step in range(1, 21):
                if step == 10:
                    cfg.write_text(
                        weighted_config(port, ports, 50, 50).replace("weight:", "wieght:", 1)
                    )
                    await wait_for(lambda: _rejected(gw), 10, "the invalid config to be rejected")
                    dump = await admin_json(gw, "/config_dump")
                    assert dump["version"] == versions_seen[-1], "the old config must keep serving"
                    assert "wieght" in str(dump["last_reload_error"])
                    continue
                w2 = 100 if step == 20 else step * 5
                cfg.write_text(weighted_config(port, ports, 100 - w2, w2))
                await wait_for(
                    lambda: _version_changed(gw, versions_seen[-1]), 10, f"reload {step}"
                )
                versions_seen.append(str((await admin_json(gw, "/config_dump"))["version"]))
            before_final = len(load.bodies)
            await asyncio.sleep(0.5)
        final = [json.loads(b)["version"] for b in load.bodies[before_final:]]
        metrics = await _metrics(gw)
    finally:
        gw.stop()
    measured(
        f"reload test: {load.total} requests, statuses {dict(load.statuses)}, "
        f"errors {dict(load.errors)}, {len(versions_seen) - 1} reloads applied, "
        f"final split {dict(collections.Counter(final))}"
    )
    assert load.total > 200
    assert load.failures == 0, (load.statuses, load.errors)
    assert len(set(versions_seen)) == 20  # initial + 19 valid changes
    assert final and set(final) == {"v2"}
    assert 'gateway_config_reloads_total{result="rejected",tier="tier2"} 1.0' in metrics
    assert 'gateway_config_reloads_total{result="success",tier="tier2"} 20.0' in metrics


async def _version_changed(gw: GatewayProcess, old: str) -> bool:
    return (await admin_json(gw, "/config_dump"))["version"] != old


async def _rejected(gw: GatewayProcess) -> bool:
    return bool((await admin_json(gw, "/config_dump"))["last_reload_error"])


async def _metrics(gw: GatewayProcess) -> str:
    async with aiohttp.ClientSession() as s, s.get(gw.admin + "/stats/prometheus") as r:
        return await r.text()
