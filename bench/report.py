"""Data path (benchmark): the markdown tables, goal lines and JSON document of a run (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.pyspy import Profile
from bench.stats import Ratio, Summary
from bench.stream import Transfer

RSS_LIMIT_BYTES = 20 * 1000 * 1000
MB = 1000 * 1000
MIB = 1024 * 1024


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
    ]
    lines = [_row(head), _row(["---"] * len(head))]
    for s in summaries:
        proxied = s.key != "a"
        cpu = f"{s.cpu_us_per_request:.1f}" if proxied else "-"
        kernel = f"{s.system_us_per_request:.1f}" if proxied else "-"
        cores = f"{s.proxy_cores:.2f}" if proxied else "-"
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
                ]
            )
        )
    return "\n".join(lines)


def ratio_table(ratios: Sequence[Ratio]) -> str:
    head = ["ours vs nginx", "rps ours/nginx", "CPU per request ours/nginx", "goal (rps)", "result"]
    lines = [_row(head), _row(["---"] * len(head))]
    for r in ratios:
        lines.append(
            _row(
                [
                    f"{r.ours} / {r.nginx}",
                    f"{r.rps_ratio:.2f}x",
                    f"{r.cpu_ratio:.2f}x",
                    f"≥ {r.goal}x",
                    "PASS" if r.passed else "FAIL",
                ]
            )
        )
    return "\n".join(lines)


def goal_lines(ratios: Sequence[Ratio]) -> list[str]:
    return [
        f"{'PASS' if r.passed else 'FAIL'}: {r.ours} reaches {r.rps_ratio:.2f}x nginx rps "
        f"({r.nginx}); goal ≥ {r.goal}x. CPU per request is {r.cpu_ratio:.2f}x nginx's."
        for r in ratios
    ]


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
                "goal": r.goal,
                "passed": r.passed,
            }
            for r in ratios
        ],
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
