"""A cluster's pod group: every demo pod in one event loop, all or nothing at start."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from gateway_lab.pods import main, pod_config, start_group, stop_group
from gateway_lab.topology import PodInstance
from tests.conftest import free_port


def instance(name: str, port: int, role: str = "echo", **urls: str) -> PodInstance:
    return PodInstance(
        name=name,
        service=name.split("-")[0],
        role=role,
        version="v2",
        cluster="cluster-9",
        locality="r/z",
        host="127.0.0.1",
        port=port,
        backend_urls=urls,
    )


def test_pod_config_carries_identity_and_backends() -> None:
    """Name, cluster, version, locality and backend URLs reach the demo pod's config."""
    cfg = pod_config(instance("productpage-v2-0", 9080, "productpage", details="http://d:1"))
    assert (cfg.pod, cfg.cluster, cfg.version, str(cfg.locality)) == (
        "productpage-v2-0",
        "cluster-9",
        "v2",
        "r/z",
    )
    assert (cfg.details_url, cfg.reviews_url, cfg.role) == ("http://d:1", None, "productpage")


async def test_group_serves_each_pod_with_its_identity() -> None:
    """Every pod of the group answers with its own pod name and the cluster."""
    ports = [free_port(), free_port()]
    runners = await start_group([instance(f"echo-v2-{i}", p) for i, p in enumerate(ports)])
    try:
        async with aiohttp.ClientSession() as session:
            for i, port in enumerate(ports):
                async with session.get(f"http://127.0.0.1:{port}/echo") as resp:
                    body = await resp.json()
                assert (body["pod"], body["cluster"]) == (f"echo-v2-{i}", "cluster-9")
    finally:
        await stop_group(runners)


async def test_a_pod_that_cannot_listen_stops_the_ones_started() -> None:
    """A busy port fails the group with the pod's name; earlier pods release their ports."""
    first = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(OSError, match=rf"pod echo-v2-1 cannot listen on 127.0.0.1:{taken}"):
            await start_group([instance("echo-v2-0", first), instance("echo-v2-1", taken)])
    with socket.socket() as again:
        again.bind(("127.0.0.1", first))


def test_unknown_cluster_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Asking for a cluster the topology lacks is a usage error, not a traceback."""
    assert main(["--cluster", "cluster-9"]) == 2
    assert "no cluster 'cluster-9'" in capsys.readouterr().err
