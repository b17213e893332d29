"""Data path (benchmark): the markdown tables, goal lines and JSON document of a run (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.pyspy import Profile
from bench.stats import COMPARISONS, RPS_PER_CORE, Ratio, Summary
from bench.stream import Transfer

RSS_LIMIT_BYTES = 20 * 1000 * 1000
MB = 1000 * 1000
MIB = 1024 * 1024
DIRECT = ("a", "grpc-direct")
"""Paths without a proxy: no proxy CPU or RSS to show."""


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def path_table(summaries: Sequence[Summary], labels: dict[str, str]) -> str:
    head = [
        "path",
        "rps (median)",
        "spread %",
        "p50 ms",
        "p99 ms",
        "proxy CPU µs/req",
        "of which kernel",
        "proxy cores",
        "load core busy",
        "other cores",
        "errors",
        "proxy RSS MiB",
    ]
    lines = [_row(head), _row(["---"] * len(head))]
    for s in summaries:
        proxied = s.key not in DIRECT
        cpu = f"{s.cpu_us_per_request:.1f}" if proxied else "-"
        kernel = f"{s.system_us_per_request:.1f}" if proxied else "-"
        cores = f"{s.proxy_cores:.2f}" if proxied else "-"
        rss = f"{s.rss_peak / MIB:.1f}" if proxied else "-"
        lines.append(
            _row(
                [
                    f"{s.key}: {labels.get(s.key, s.key)}",
                    f"{s.rps:,.0f}",
                    f"{s.spread_pct:.1f}",
                    f"{s.p50_ms:.2f}",
                    f"{s.p99_ms:.2f}",
                    cpu,
                    kernel,
                    cores,
                    f"{s.load_core_busy:.2f}",
                    f"{s.other_cores:.2f}",
                    s.errors,
                    rss,
                ]
            )
        )
    return "\n".join(lines)


def _verdict(r: Ratio) -> str:
    return "measured" if r.passed is None else "PASS" if r.passed else "FAIL"


def _goal(goal: float | None, metric: str) -> str:
    return "none: as measured" if goal is None else f"{metric} ≥ {goal}x"


def ratio_table(ratios: Sequence[Ratio]) -> str:
    head = ["ours vs nginx", "rps ours/nginx", "CPU per request ours/nginx"]
    head += ["rps per core ours/nginx", "goal", "result"]
    lines = [_row(head), _row(["---"] * len(head))]
    for r in ratios:
        lines.append(
            _row(
                [
                    f"{r.ours} / {r.nginx}",
                    f"{r.rps_ratio:.2f}x",
                    f"{r.cpu_ratio:.2f}x",
                    f"{r.rps_per_core_ratio:.2f}x",
                    _goal(r.goal, r.metric),
                    _verdict(r),
                ]
            )
        )
    return "\n".join(lines)


def goal_line(r: Ratio) -> str:
    if r.goal is None:
        return (
            f"MEASURED: {r.ours} reaches {r.rps_ratio:.2f}x nginx rps ({r.nginx}) and "
            f"{r.rps_per_core_ratio:.2f}x its rps per core; no goal, reported as measured. "
            f"CPU per request is {r.cpu_ratio:.2f}x nginx's."
        )
    if r.metric == RPS_PER_CORE:
        kind = r.ours.split("-")[0]
        return (
            f"{_verdict(r)}: {r.ours} reaches {r.rps_per_core_ratio:.2f}x nginx rps per core "
            f"({r.nginx}); goal: {kind} ≥ {r.goal}x nginx rps per core. rps is "
            f"{r.rps_ratio:.2f}x nginx's, CPU per request {r.cpu_ratio:.2f}x."
        )
    return (
        f"{_verdict(r)}: {r.ours} reaches {r.rps_ratio:.2f}x nginx rps "
        f"({r.nginx}); goal ≥ {r.goal}x. CPU per request is {r.cpu_ratio:.2f}x nginx's."
    )


def goal_lines(ratios: Sequence[Ratio]) -> list[str]:
    return [goal_line(r) for r in ratios]


def unavailable_lines(failures: dict[str, str], labels: dict[str, str]) -> list[str]:
    """One line per path that could not be measured, and one per goal left unevaluated."""
    lines = [
        f"NOT MEASURED: {key} ({labels.get(key, key)}): {reason}"
        for key, reason in failures.items()
    ]
    for ours, nginx, goal, metric in COMPARISONS:
        missing = [key for key in (ours, nginx) if key in failures]
        if missing:
            lines.append(
                f"NOT MEASURED: {ours} / {nginx} (goal: {_goal(goal, metric)}): "
                f"{' and '.join(missing)} could not be measured"
            )
    return lines


def rss_table(transfers: Sequence[Transfer]) -> str:
    head = ["transfer", "framing", "MB", "seconds", "MB/s", "RSS before MiB", "peak MiB"]
    head += ["growth MB", "intact", "< 20 MB"]
    lines = [_row(head), _row(["---"] * len(head))]
    for t in transfers:
        lines.append(
            _row(
                [
                    t.direction,
                    t.framing,
                    f"{t.size / MB:.0f}",
                    f"{t.seconds:.2f}",
                    f"{t.size / MB / t.seconds:.0f}" if t.seconds > 0 else "-",
                    f"{t.rss_before / MIB:.1f}",
                    f"{t.rss_peak / MIB:.1f}",
                    f"{t.growth / MB:.1f}",
                    "yes" if t.intact else f"NO ({t.error})" if t.error else "NO",
                    "PASS" if t.intact and t.growth < RSS_LIMIT_BYTES else "FAIL",
                ]
            )
        )
    return "\n".join(lines)


def profile_text(profile: Profile, path_key: str) -> str:
    lines = [
        f"py-spy profile of {path_key} under load: {profile.samples} samples with the GIL held "
        "(event-loop thread)"
    ]
    lines.append("top functions by self time (% of samples; includes the C calls they make):")
    lines += [f"  {h.self_pct:5.1f}%  {h.function}" for h in profile.by_self]
    lines.append("top functions by inclusive time:")
    lines += [f"  {h.inclusive_pct:5.1f}%  {h.function}" for h in profile.by_inclusive]
    return "\n".join(lines)


def document(
    meta: dict[str, object],
    summaries: Sequence[Summary],
    raw_runs: dict[str, list[dict[str, object]]],
    ratios: Sequence[Ratio],
    transfers: Sequence[Transfer],
    profile: Profile | None,
    unavailable: dict[str, str] | None = None,
) -> dict[str, object]:
    """Everything of a run as plain JSON-able data (bench/results/*.json)."""
    return {
        "meta": meta,
        "paths": {
            s.key: {
                "rps": s.rps,
                "rps_runs": list(s.rps_runs),
                "spread_pct": s.spread_pct,
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "proxy_cpu_us_per_request": s.cpu_us_per_request,
                "proxy_kernel_us_per_request": s.system_us_per_request,
                "proxy_cores": s.proxy_cores,
                "load_core_busy": s.load_core_busy,
                "proxy_core_busy": s.proxy_core_busy,
                "other_cores": s.other_cores,
                "errors": s.errors,
                "proxy_rss_peak_bytes": s.rss_peak,
                "runs": raw_runs.get(s.key, []),
            }
            for s in summaries
        },
        "ratios": [
            {
                "ours": r.ours,
                "nginx": r.nginx,
                "rps_ratio": r.rps_ratio,
                "cpu_per_request_ratio": r.cpu_ratio,
                "rps_per_core_ratio": r.rps_per_core_ratio,
                "goal": r.goal,
                "goal_metric": r.metric,
                "passed": r.passed,
            }
            for r in ratios
        ],
        "unavailable": dict(unavailable or {}),
        "rss": [
            {
                "direction": t.direction,
                "framing": t.framing,
                "bytes": t.size,
                "seconds": t.seconds,
                "rss_before_bytes": t.rss_before,
                "rss_peak_bytes": t.rss_peak,
                "growth_bytes": t.growth,
                "intact": t.intact,
                "error": t.error,
                "passed": t.intact and t.growth < RSS_LIMIT_BYTES,
            }
            for t in transfers
        ],
        "profile": None
        if profile is None
        else {
            "samples": profile.samples,
            "self": [[h.function, h.self_pct] for h in profile.by_self],
            "inclusive": [[h.function, h.inclusive_pct] for h in profile.by_inclusive],
        },
    }
