"""Control path: the command line shared by ``tier1-gateway`` and ``tier2-gateway``.

    <tier>-gateway [run] --config PATH [PATH ...] [--admin-address HOST:PORT] [--workers N|auto]
                   [--cluster-name NAME] [--locality REGION/ZONE/SUBZONE] [--bind-address ADDR]
    <tier>-gateway validate --config PATH ...
    <tier>-gateway explain --config PATH ... [-H 'Name: value' ...] [--source-ip IP] URL

``run`` is the default subcommand. ``validate`` exits 0 for a valid configuration and 1
otherwise, printing every diagnostic. The tier packages only supply their role defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from gateway_core.cli_commands import explain_command, validate_command
from gateway_core.settings import GatewaySettings
from gateway_core.snapshot import Locality

SUBCOMMANDS = ("run", "validate", "explain")


@dataclass(frozen=True, slots=True)
class RoleDefaults:
    tier: str
    description: str
    xff_trusted_hops: int
    spillover: bool


def main(argv: Sequence[str] | None, role: RoleDefaults) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0] not in (*SUBCOMMANDS, "-h", "--help", "--version"):
        args_list.insert(0, "run")
    parser = _parser(role)
    args = parser.parse_args(args_list)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO)
        if hasattr(args, "log_level")
        else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command == "validate":
        return validate_command(args, _settings(args, role).node())
    if args.command == "explain":
        return explain_command(args, lambda: _settings(args, role).node())
    return _run(args, role)


def _parser(role: RoleDefaults) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{role.tier}-gateway", description=role.description)
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve traffic (default)")
    _config_args(run)
    run.add_argument(
        "--admin-address", default="127.0.0.1:15000", type=_address, metavar="HOST:PORT"
    )
    run.add_argument(
        "--admin-token-file",
        default="",
        metavar="PATH",
        help="bearer token required by the admin's POST calls (/reload, /drain)",
    )
    run.add_argument(
        "--admin-allow-unauthenticated-loopback",
        action="store_true",
        help="let loopback callers use the admin's POST calls without the token",
    )
    run.add_argument("--access-log", default="-", help="'-' (stdout), 'off', or a file path")
    run.add_argument(
        "--access-log-format",
        default="json",
        choices=["json", "text"],
        help="json (one object per line) or text (Istio's default Envoy format)",
    )
    run.add_argument(
        "--dns-server",
        action="append",
        default=[],
        type=_address,
        metavar="HOST:PORT",
        help="DNS server for ServiceEntry resolution (default: /etc/resolv.conf)",
    )
    run.add_argument(
        "--xff-trusted-hops",
        type=int,
        default=role.xff_trusted_hops,
        help=f"trusted proxies in front of this gateway (default {role.xff_trusted_hops})",
    )
    run.add_argument(
        "--spillover",
        action=argparse.BooleanOptionalAction,
        default=role.spillover,
        help="move a weighted destination's share to the others when it has no healthy endpoint",
    )
    run.add_argument("--health-path", default="/healthz/ready")
    run.add_argument(
        "--dns-refresh-min",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="re-resolve DNS names no sooner than this (default 5)",
    )
    run.add_argument(
        "--dns-refresh-max",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="re-resolve DNS names at least this often, whatever the TTL (default 300)",
    )
    run.add_argument(
        "--sticky-secret-file",
        metavar="PATH",
        help="HMAC key for sticky-session cookies, shared by all replicas "
        "(default: $GATEWAY_STICKY_SECRET, else a random key per process)",
    )
    run.add_argument(
        "--gateway-id",
        default="",
        metavar="ID",
        help="this gateway's entry in x-gateway-hops, the loop guard's header; give the "
        "replicas of one gateway the same id (default: <hostname>-<random>)",
    )
    run.add_argument(
        "--max-gateway-hops",
        type=_positive,
        default=8,
        metavar="N",
        help="refuse (508) requests that already passed N gateways (default 8)",
    )
    run.add_argument(
        "--hop-secret-file",
        metavar="PATH",
        help="HMAC key of the loop guard's hop entries; gateways sharing it recognise each "
        "other's entries from untrusted peers (default: $GATEWAY_HOP_SECRET, else random)",
    )
    run.add_argument("--drain-propagation", type=float, default=5.0, metavar="SECONDS")
    run.add_argument("--drain-deadline", type=float, default=25.0, metavar="SECONDS")
    run.add_argument("--watch-interval", type=float, default=1.0, metavar="SECONDS")
    run.add_argument(
        "--workers",
        default="1",
        type=_workers,
        metavar="N|auto",
        help="worker processes under one supervisor; auto: one per CPU this process may use "
        "(affinity and cgroup quota). Default 1: a single process",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _tracing_args(run)
    validate = sub.add_parser("validate", help="check configuration and print every diagnostic")
    _config_args(validate)
    ex = sub.add_parser("explain", help="show how a request would be routed")
    _config_args(ex, required=False)
    ex.add_argument("-H", "--header", action="append", default=[], metavar="'Name: value'")
    ex.add_argument("-X", "--method", default="GET")
    ex.add_argument("--source-ip", default="127.0.0.1")
    ex.add_argument(
        "--xff-trusted-hops",
        type=int,
        default=role.xff_trusted_hops,
        help="X-Forwarded-For hops to trust for remote.ip (authorization)",
    )
    ex.add_argument(
        "--http2",
        action="store_true",
        help="the client speaks HTTP/2 (decides useClientProtocol upstreams)",
    )
    ex.add_argument(
        "--admin-address",
        type=_address,
        metavar="HOST:PORT",
        help="explain against a running gateway's live state instead of --config",
    )
    ex.add_argument("--json", action="store_true", help="print JSON")
    ex.add_argument("url", nargs="?", help="the request, e.g. https://bookinfo.example.com:8443/x")
    return parser


def _tracing_args(run: argparse.ArgumentParser) -> None:
    group = run.add_argument_group("tracing (docs/tracing.md)")
    group.add_argument(
        "--tracing-otlp-endpoint",
        default="",
        metavar="URL",
        help="export spans over OTLP/HTTP to URL, e.g. http://127.0.0.1:4318/v1/traces "
        "(default: no tracer; trace headers pass through untouched)",
    )
    group.add_argument(
        "--tracing-sampling",
        type=_percent,
        default=1.0,
        metavar="PERCENT",
        help="sample this percent of requests that arrive without a sampling decision "
        "(Istio's sampling; default 1)",
    )
    group.add_argument(
        "--tracing-queue-size",
        type=int,
        default=2048,
        metavar="SPANS",
        help="spans waiting for export at most; more are dropped and counted (default 2048)",
    )
    group.add_argument(
        "--tracing-flush-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between span exports (default 5)",
    )


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"expected a percentage from 0 to 100, got {text!r}")
    return value


def _config_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument(
        "--config",
        nargs="+",
        action="extend",  # ``--config a --config b`` loads both, as ``--config a b`` does
        required=required,
        metavar="PATH",
        default=[],
        help="Istio YAML files or directories (repeatable)",
    )
    p.add_argument("--cluster-name", default="")
    p.add_argument("--locality", default="", metavar="REGION/ZONE/SUBZONE")
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument("--cert-dir", default="certs/lab", help="where credentialName secrets live")
    p.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="labels of this gateway (failoverPriority, sourceLabels, policy selectors)",
    )
    p.add_argument(
        "--workload-name",
        default="",
        help="this gateway's workload (Deployment) name in Istio metrics (default <tier>-gateway)",
    )
    p.add_argument("--namespace", default="", help="this gateway's namespace in Istio metrics")


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "0.0.0.0", int(port)


def _workers(text: str) -> int:
    if text == "auto":
        from gateway_core.server.cpus import available_cpus

        return available_cpus()
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'auto', got {text!r}")
    return int(text)


def _settings(args: argparse.Namespace, role: RoleDefaults) -> GatewaySettings:
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    settings = GatewaySettings(
        tier=role.tier,
        config_paths=tuple(args.config),
        cluster_name=args.cluster_name,
        locality=Locality.parse(args.locality),
        bind_address=args.bind_address,
        cert_dir=args.cert_dir,
        labels=labels,
        workload_name=args.workload_name,
        namespace=args.namespace,
        xff_trusted_hops=role.xff_trusted_hops,
        spillover=role.spillover,
    )
    if args.command == "run":
        settings = replace(
            settings,
            admin_address=args.admin_address,
            admin_token_file=args.admin_token_file,
            admin_allow_unauthenticated_loopback=args.admin_allow_unauthenticated_loopback,
            access_log=args.access_log,
            access_log_format=args.access_log_format,
            dns_servers=tuple(args.dns_server),
            xff_trusted_hops=args.xff_trusted_hops,
            spillover=args.spillover,
            health_path=args.health_path,
            sticky_secret=_sticky_secret(args.sticky_secret_file),
            dns_refresh_min=args.dns_refresh_min,
            dns_refresh_max=args.dns_refresh_max,
            drain_propagation=args.drain_propagation,
            drain_deadline=args.drain_deadline,
            watch_interval=args.watch_interval,
            log_level=args.log_level,
            gateway_id=args.gateway_id or settings.gateway_id,
            max_gateway_hops=args.max_gateway_hops,
            hop_secret=_secret(args.hop_secret_file, "GATEWAY_HOP_SECRET") or settings.hop_secret,
            workers=args.workers,
            tracing_endpoint=args.tracing_otlp_endpoint,
            tracing_sampling=args.tracing_sampling,
            tracing_queue_size=args.tracing_queue_size,
            tracing_flush_interval=args.tracing_flush_interval,
        )
    return settings


def _sticky_secret(path: str | None) -> bytes:
    return _secret(path, "GATEWAY_STICKY_SECRET")


def _secret(path: str | None, variable: str) -> bytes:
    """A key from a file, else from the environment variable, else empty."""
    if path:
        with open(path, "rb") as handle:
            return handle.read().strip()
    return os.environ.get(variable, "").encode()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _run(args: argparse.Namespace, role: RoleDefaults) -> int:
    from gateway_core.server.app import Gateway, serve
    from gateway_core.utils.preflight import check_runtime

    problem = check_runtime()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    settings = _settings(args, role)
    factory: Callable[[GatewaySettings], Gateway] = Gateway
    if settings.workers > 1:
        from gateway_core.server.supervisor import Supervisor

        factory = Supervisor
    try:
        import uvloop

        return uvloop.run(serve(settings, factory))
    except ImportError:
        return asyncio.run(serve(settings, factory))
