"""Data path (benchmark): medians over runs, ratios to nginx and the issue's goals (pure).

Each metric's median is taken on its own across runs (the baseline's method). The rps ratio is
ours/nginx (higher is better); the CPU ratio is ours/nginx CPU µs per request (lower is better).
The rps per core ratio is rps per second of proxy CPU time, ours/nginx: 1e6 / CPU µs per request
on each side, so it is the CPU ratio inverted. Goals are evaluated on the metric the issue
states them in: the rps ratio for (b) and (c) ("≥ 0.5x nginx"), rps per core for HTTP/2
("≥ 0.35x nginx requests per second per core"); gRPC has no goal and is reported as measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.load import RunResult

RPS = "rps"
RPS_PER_CORE = "rps per core"

# (ours, nginx, goal or None, the metric the goal is on): the goals.
COMPARISONS: tuple[tuple[str, str, float | None, str], ...] = (
    ("b-ours", "b-nginx", 0.5, RPS),
    ("b-ours-log", "b-nginx-log", 0.5, RPS),
    ("c-ours-tls", "c-nginx-tls", 0.4, RPS),
    ("c-ours-plain", "c-nginx-plain", 0.4, RPS),
    ("h2-ours-1x100", "h2-nginx-1x100", 0.35, RPS_PER_CORE),
    ("h2-ours-10x10", "h2-nginx-10x10", 0.35, RPS_PER_CORE),
    ("grpc-ours", "grpc-nginx", None, RPS),
    ("b-floor", "b-nginx", None, RPS),
    ("h2-floor-1x100", "h2-nginx-1x100", None, RPS_PER_CORE),
    ("h2-floor-10x10", "h2-nginx-10x10", None, RPS_PER_CORE),
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
    rss_peak: int = 0
    """The highest proxy RSS (bytes) seen in any run."""


@dataclass(frozen=True, slots=True)
class Ratio:
    ours: str
    nginx: str
    goal: float | None
    """None: no goal, the comparison is reported as measured."""
    rps_ratio: float
    cpu_ratio: float
    metric: str = RPS
    """What the goal is on: ``RPS`` or ``RPS_PER_CORE``."""

    @property
    def rps_per_core_ratio(self) -> float:
        return 1.0 / self.cpu_ratio if self.cpu_ratio else 0.0

    @property
    def goal_ratio(self) -> float:
        """The ratio the goal is evaluated on."""
        return self.rps_per_core_ratio if self.metric == RPS_PER_CORE else self.rps_ratio

    @property
    def passed(self) -> bool | None:
        return None if self.goal is None else self.goal_ratio >= self.goal


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
        rss_peak=max(r.proxy_rss_peak for r in runs),
    )


def ratios(summaries: dict[str, Summary]) -> list[Ratio]:
    """The comparisons of ``COMPARISONS`` whose two paths were both measured."""
    out = []
    for ours, nginx, goal, metric in COMPARISONS:
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
                metric=metric,
            )
        )
    return out
