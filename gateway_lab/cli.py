"""Control path (lab): ``gateway-lab`` — run the embedded three-cluster lab and its scenarios.

    gateway-lab [--topology FILE] up [--workdir DIR] [--no-wait] [--timeout S]
    gateway-lab status
    gateway-lab kill NAME [--signal KILL|TERM|INT] | start NAME
    gateway-lab scenario NAME [--requests N]
    gateway-lab token [--user NAME] [--groups A,B] [--ttl S] [--workdir DIR]
    gateway-lab grpc call|health ... TARGET     (gateway_lab.grpc_client)
    gateway-lab down

``up`` runs in the foreground until Ctrl-C (or ``down`` from another terminal); the other
commands talk to it through the lab control API. Once the lab is ready, ``up`` prints every
other subcommand with an example line (``gateway_lab.commands.lab_commands``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway_lab.control import ControlClient, LabNotRunning, ProcessError
from gateway_lab.topology import TopologyError, load_topology


def main(argv: Sequence[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    args = parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.command == "grpc":
        from gateway_lab.grpc_client import run

        return run(args)
    try:
        topology = load_topology(args.topology)
    except TopologyError as exc:
        print(f"gateway-lab: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        from gateway_lab.supervisor import run_lab

        return run_lab(topology, args.workdir, timeout=args.timeout, wait=not args.no_wait)
    if args.command == "scenario":
        from gateway_lab.scenarios import run_scenario

        return asyncio.run(run_scenario(args.name, topology, requests=args.requests))
    if args.command == "token":
        return _token(args, ControlClient(topology.control, timeout=5.0))
    client = ControlClient(topology.control)
    try:
        return asyncio.run(_control(args, client))
    except LabNotRunning as exc:
        print(f"gateway-lab: {exc}", file=sys.stderr)
        return 1
    except ProcessError as exc:
        print(f"gateway-lab: {exc}", file=sys.stderr)
        return 1


def parser() -> argparse.ArgumentParser:
    from gateway_lab.grpc_client import add_parser as add_grpc_parser
    from gateway_lab.scenarios import DEFAULT_REQUESTS, SCENARIO_REQUESTS, SCENARIOS

    main_parser = argparse.ArgumentParser(prog="gateway-lab", description=__doc__.split("\n\n")[0])
    main_parser.add_argument("--topology", type=Path, default=None, help="topology.yaml to use")
    sub = main_parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab in the foreground (Ctrl-C stops it)")
    up.add_argument("--workdir", type=Path, default=Path(".lab"), help="default: ./.lab")
    up.add_argument(
        "--no-wait",
        action="store_true",
        help="start every process without waiting for readiness between phases",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="readiness timeout (s)")
    sub.add_parser("status", help="show the running lab's processes")
    kill = sub.add_parser("kill", help="stop one lab process (e.g. tier2-cluster-1)")
    kill.add_argument("name")
    kill.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "INT"])
    start = sub.add_parser("start", help="start a stopped lab process again")
    start.add_argument("name")
    scenario = sub.add_parser("scenario", help="run a measured scenario over the running lab")
    scenario.add_argument("name", choices=sorted(SCENARIOS))
    scenario.add_argument(
        "--requests",
        type=int,
        default=None,
        help=f"requests per measurement (default {DEFAULT_REQUESTS}; "
        + ", ".join(f"{n}: {r}" for n, r in sorted(SCENARIO_REQUESTS.items()))
        + ")",
    )
    token = sub.add_parser("token", help="mint a JWT of the lab issuer (RequestAuthentication)")
    token.add_argument("--user", default="jason", help="the token's sub claim")
    token.add_argument(
        "--groups", default="", help="comma-separated groups claim (e.g. admins routes to v2)"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until exp (default 3600)")
    token.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="the lab's workdir (default: the running lab's, else ./.lab)",
    )
    add_grpc_parser(sub)
    sub.add_parser("down", help="stop the running lab")
    return main_parser


def subcommands(
    main_parser: argparse.ArgumentParser,
) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """Each subcommand of ``main_parser`` (in the order they were added): its parser and help."""
    action = next(a for a in main_parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {name: (sub, helps.get(name, "")) for name, sub in action.choices.items()}


async def _control(args: argparse.Namespace, client: ControlClient) -> int:
    if args.command == "status":
        _print_status(await client.status())
        return 0
    if args.command == "down":
        return await _down(client)
    if args.command == "kill":
        info = await client.kill(args.name, args.signal)
        print(f"{args.name} stopped (exit {info['exit_code']})")
        return 0
    info = await client.start(args.name)
    print(f"{args.name} running again (pid {info['pid']}, ready {info['ready']})")
    return 0


def _token(args: argparse.Namespace, client: ControlClient) -> int:
    from gateway_lab.jwt_issuer import mint

    workdir = args.workdir
    if workdir is None:
        try:
            workdir = Path(asyncio.run(client.status())["workdir"])
        except LabNotRunning:
            workdir = Path(".lab")
    groups = [g for g in args.groups.split(",") if g]
    try:
        print(mint(workdir, args.user, groups, ttl=args.ttl))
    except (OSError, ValueError) as exc:
        print(f"gateway-lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_status(status: dict[str, Any]) -> None:
    ready = "every process ready" if status["ready"] else "NOT every process is ready"
    print(f"lab {status['state']}, {ready} (supervisor pid {status['pid']})")
    print(f"workdir {status['workdir']}, topology {status['topology']}")
    print(f"{'process':<18} {'pid':>7}  {'state':<8} {'starts':>6}  what")
    for p in status["processes"]:
        state = "ready" if p["ready"] else "running" if p["alive"] else f"exit {p['exit_code']}"
        print(f"{p['name']:<18} {p['pid'] or '-':>7}  {state:<8} {p['starts']:>6}  {p['summary']}")


async def _down(client: ControlClient) -> int:
    await client.shutdown()
    for _ in range(300):
        try:
            await client.status()
        except LabNotRunning:
            print("lab stopped")
            return 0
        await asyncio.sleep(0.1)
    print("gateway-lab: the lab is still stopping after 30s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
