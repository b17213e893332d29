"""Data path (lab): one process serving every demo pod of one cluster in a single event loop.

``python -m gateway_lab.pods --cluster cluster-2 [--topology FILE]`` starts one aiohttp demo pod
per address of each ``pods`` entry of that cluster (about 20 small apps; role ``grpc`` entries
get a grpcio server each, gateway_lab.grpc_pod), prints
``pods ready: N pods of CLUSTER`` on stderr once all listen, and serves until SIGTERM/SIGINT.
One process per cluster instead of one per pod keeps the lab light (a Python interpreter costs
~30 MB); pods stay independent apps, each with its own failure switch under ``/admin``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gateway_core.snapshot import Locality
from gateway_lab.demo_pod import GRPC_ROLE, PodConfig, start_pod
from gateway_lab.grpc_pod import start_grpc_pod
from gateway_lab.topology import PodInstance, TopologyError, load_topology


class RunningPod(Protocol):
    """A started pod (an aiohttp ``AppRunner`` or a ``GrpcPod``): ``cleanup()`` stops it."""

    async def cleanup(self) -> None: ...


def pod_config(instance: PodInstance) -> PodConfig:
    urls = instance.backend_urls
    return PodConfig(
        role=instance.role,
        host=instance.host,
        port=instance.port,
        cluster=instance.cluster,
        pod=instance.name,
        version=instance.version,
        locality=Locality.parse(instance.locality),
        details_url=urls.get("details"),
        reviews_url=urls.get("reviews"),
        ratings_url=urls.get("ratings"),
    )


async def start_one(instance: PodInstance) -> RunningPod:
    config = pod_config(instance)
    if instance.role == GRPC_ROLE:
        return await start_grpc_pod(config)
    return await start_pod(config)


async def start_group(instances: Sequence[PodInstance]) -> list[RunningPod]:
    """Start every pod; if one cannot listen, the ones already started are stopped again."""
    runners: list[RunningPod] = []
    try:
        for instance in instances:
            try:
                runners.append(await start_one(instance))
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"pod {instance.name} cannot listen on {instance.host}:{instance.port}: "
                    f"{exc.strerror}",
                ) from exc
    except BaseException:
        await stop_group(runners)
        raise
    return runners


async def stop_group(runners: Sequence[RunningPod]) -> None:
    await asyncio.gather(*(r.cleanup() for r in runners), return_exceptions=True)


async def serve(cluster: str, instances: Sequence[PodInstance]) -> int:
    try:
        runners = await start_group(instances)
    except OSError as exc:
        print(f"pods: {exc.strerror}", file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"pods ready: {len(runners)} pods of {cluster}", file=sys.stderr, flush=True)
    for instance in instances:
        print(
            f"  {instance.name} ({instance.role} {instance.version}) "
            f"on {instance.host}:{instance.port}",
            file=sys.stderr,
            flush=True,
        )
    try:
        await stop.wait()
    finally:
        await stop_group(runners)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway_lab.pods", description=__doc__)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--topology", type=Path, default=None, help="topology.yaml to read")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    try:
        topology = load_topology(args.topology)
        instances = topology.pod_instances(args.cluster)
    except (TopologyError, KeyError) as exc:
        print(f"pods: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(args.cluster, instances))


if __name__ == "__main__":
    sys.exit(main())
