"""Control path: the ``validate`` and ``explain`` subcommands of both gateways' command line
(``cli.py`` parses the arguments and builds the node they compile for)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict

from gateway_core.pipeline import build_snapshot
from gateway_core.routing.explain import Call, Result, explain
from gateway_core.snapshot import NodeInfo


def validate_command(args: argparse.Namespace, node: NodeInfo) -> int:
    """``validate``: every diagnostic, then 0 (valid) or 1."""
    result = build_snapshot(args.config, node)
    for diag in result.diagnostics:
        print(diag)
    errors = len(result.diagnostics.errors)
    warnings = len(result.diagnostics.warnings)
    if result.ok:
        count = sum(1 for _ in result.resources.all()) if result.resources else 0
        print(
            f"configuration is valid: {count} resources in {len(result.files)} files, "
            f"{warnings} warnings"
        )
        return 0
    print(f"configuration rejected: {errors} errors, {warnings} warnings", file=sys.stderr)
    return 1


def explain_command(args: argparse.Namespace, node: Callable[[], NodeInfo]) -> int:
    """``explain``: how a request would be routed, from the files (``node``: this gateway's
    node, built on demand) or from a running gateway's admin (``--admin-address``)."""
    if args.url is None and args.config and "://" in args.config[-1]:
        # ``--config a b URL``: argparse's nargs="+" swallowed the URL.
        args.url = args.config.pop()
    if args.url is None:
        print(
            "explain needs a URL, e.g. http://bookinfo.example.com:8080/productpage",
            file=sys.stderr,
        )
        return 2
    headers = tuple(_header(h) for h in args.header)
    if args.admin_address:
        return _explain_live(args, headers)
    if not args.config:
        print("explain needs --config or --admin-address", file=sys.stderr)
        return 2
    result = build_snapshot(args.config, node())
    if result.snapshot is None:
        for diag in result.diagnostics.errors:
            print(diag, file=sys.stderr)
        return 1
    call = Call(args.url, args.method, headers, args.source_ip, args.http2, args.xff_trusted_hops)
    res = explain(result.snapshot, call)
    if args.json:
        print(json.dumps(asdict(res), indent=2))
    else:
        print(format_result(res))
    return 0 if res.route else 1


def _explain_live(args: argparse.Namespace, headers: tuple[tuple[str, str], ...]) -> int:
    host, port = args.admin_address
    query = [("url", args.url), ("method", args.method), ("source_ip", args.source_ip)]
    if args.http2:
        query.append(("http2", "1"))
    query += [("header", f"{n}: {v}") for n, v in headers]
    url = f"http://{host}:{port}/explain?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.load(resp)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0 if data.get("route") else 1
    clusters = data.pop("clusters", {})
    res = Result(**{k: v for k, v in data.items() if k != "destinations"})
    res.destinations = []
    print(format_result(res, data.get("destinations", [])))
    for key, state in clusters.items():
        print(f"  live state of {key}:")
        for lvl in state["priorities"]:
            print(
                f"    priority {lvl['priority']}: {lvl['healthy']}/{lvl['hosts']} healthy, "
                f"load {lvl['load']}%{' PANIC' if lvl['panic'] else ''}"
                + (f", ejected {', '.join(lvl['ejected'])}" if lvl["ejected"] else "")
            )
    return 0 if data.get("route") else 1


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep:
        raise SystemExit(f"bad header {text!r}: expected 'Name: value'")
    return name.strip(), value.strip()


def format_result(res: Result, raw_destinations: list[dict[str, object]] | None = None) -> str:
    lines = [f"listener:        {res.listener or '-'}", f"gateway server:  {res.server or '-'}"]
    if res.downstream_protocol:
        lines.append(f"client protocol: {res.downstream_protocol}")
    if res.authorization:
        lines.append(f"authorization:   {res.authorization}")
    lines.append(f"virtual host:    {res.virtual_host or '-'}")
    if res.route is None:
        lines.append(f"result:          {res.reason}")
        return "\n".join(lines)
    lines.append(f"virtual service: {res.virtual_service}")
    lines.append(f"rule:            http[{res.rule_index}] ({res.route})")
    lines.append(
        "matched:         "
        + (json.dumps(res.match) if res.match else "(no match block: matches all)")
    )
    if res.action == "redirect":
        lines.append(f"action:          redirect {res.status} -> {res.redirect}")
    elif res.action == "direct_response":
        lines.append(f"action:          direct response {res.status}")
    else:
        lines.append("action:          route")
        dests = (
            raw_destinations
            if raw_destinations is not None
            else [asdict(d) for d in res.destinations]
        )
        for d in dests:
            lines.append(
                f"  -> {d['host']}:{d['port']} subset={d['subset'] or '-'} weight={d['weight']} "
                f"share={float(str(d['share'])) * 100:.1f}%  cluster {d['cluster']}"
            )
            lines.append(f"       upstream protocol: {d.get('protocol', '-')}")
            levels = d.get("priorities") or ()
            assert isinstance(levels, (list, tuple))
            if len(levels) > 1:
                lines.append(
                    "       priorities (all healthy): "
                    + ", ".join(
                        f"P{lv['priority']} {lv['load']}% ({lv['endpoints']} endpoints)"
                        for lv in levels
                        if isinstance(lv, dict)
                    )
                )
            endpoints = d.get("endpoints") or ()
            assert isinstance(endpoints, (list, tuple))
            for ep in endpoints:
                assert isinstance(ep, dict)
                lines.append(
                    f"       endpoint {ep['address']}:{ep['port']} priority={ep['priority']} "
                    f"weight={ep['weight']} locality={ep['locality'] or '-'} labels={ep['labels']}"
                )
    return "\n".join(lines)
