"""Data path (benchmark): medians over runs, ratios to nginx and the issue's goals (pure).

Each metric's median is taken on its own across runs (the baseline's method). The rps ratio is
ours/nginx (higher is better); the CPU ratio is ours/nginx CPU µs per request (lower is better).
Goals are evaluated on the rps ratio, as the issue states them ("≥ 0.5x nginx").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.wrk import RunResult

# (ours, nginx, goal on the rps ratio): the goals for (b) and (c).
COMPARISONS: tuple[tuple[str, str, float], ...] = (
    ("b-ours", "b-nginx", 0.5),
    ("b-ours-log", "b-nginx-log", 0.5),
    ("c-ours-tls", "c-nginx-tls", 0.4),
    ("c-ours-plain", "c-nginx-plain", 0.4),
)


@dataclass(frozen=True, slots=True)
class Summary:
    """Medians over the runs of one path."""

    key: str
    runs: int
    rps: float
    rps_runs: tuple[float, ...]
    spread_pct: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    system_us_per_request: float
    proxy_cores: float
    load_core_busy: float
    proxy_core_busy: float
    other_cores: float
    errors: int


@dataclass(frozen=True, slots=True)
class Ratio:
    ours: str
    nginx: str
    goal: float
    rps_ratio: float
    cpu_ratio: float

    @property
    def passed(self) -> bool:
        return self.rps_ratio >= self.goal


def summarize(key: str, runs: Sequence[RunResult]) -> Summary:
    if not runs:
        raise ValueError(f"{key}: no runs")
    rps = tuple(r.report.rps for r in runs)
    median_rps = statistics.median(rps)
    return Summary(
        key=key,
        runs=len(runs),
        rps=median_rps,
        rps_runs=rps,
        spread_pct=100.0 * (max(rps) - min(rps)) / median_rps if median_rps else 0.0,
        p50_ms=statistics.median(r.report.p50_ms for r in runs),
        p99_ms=statistics.median(r.report.p99_ms for r in runs),
        cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in runs),
        system_us_per_request=statistics.median(r.system_us_per_request for r in runs),
        proxy_cores=statistics.median(r.proxy_cores for r in runs),
        load_core_busy=statistics.median(r.load_core_busy for r in runs),
        proxy_core_busy=statistics.median(r.proxy_core_busy for r in runs),
        other_cores=statistics.median(r.other_cores for r in runs),
        errors=sum(r.report.socket_errors + r.report.non_2xx_3xx for r in runs),
    )


def ratios(summaries: dict[str, Summary]) -> list[Ratio]:
    """The comparisons of ``COMPARISONS`` whose two paths were both measured."""
    out = []
    for ours, nginx, goal in COMPARISONS:
        if ours not in summaries or nginx not in summaries:
            continue
        a, b = summaries[ours], summaries[nginx]
        out.append(
            Ratio(
                ours=ours,
                nginx=nginx,
                goal=goal,
                rps_ratio=a.rps / b.rps if b.rps else 0.0,
                cpu_ratio=(
                    a.cpu_us_per_request / b.cpu_us_per_request if b.cpu_us_per_request else 0.0
                ),
            )
        )
    return out
