"""Compare two result sets (e.g. two TRACER versions) per (task identity, method) and metric: mean
± seed std on each side and the change; B regresses on a metric when it moves in the metric's bad
direction (benchmark.metrics.METRICS) by more than the tolerance. Usable in CI (DESIGN §6)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from benchmark.metrics import METRICS
from leaderboard.table import load_results
from tasks.errors import BenchError

DEFAULT_METRICS = (
    "erasure_score", "forgetting_part", "utility_part", "retained_ndcg_ratio@10", "fe@10",
    "fe_latent@10", "ce@10",
)  # fmt: skip
KEYS = ["task_identity", "method"]


@dataclass
class Row:
    task: str
    method: str
    metric: str
    higher_is_better: bool
    a: tuple[float, float, int]  # mean, std (ddof=1; NaN for one seed), seeds
    b: tuple[float, float, int]
    tolerance: float
    status: str  # ok, better, REGRESSION, n/a (no values on either side), new in B, missing in B

    @property
    def delta(self) -> float:
        return self.b[0] - self.a[0]

    @property
    def regression(self) -> bool:
        return self.status in ("REGRESSION", "missing in B")


@dataclass
class Comparison:
    rows: list[Row]
    only_a: list[tuple[str, str]] = field(default_factory=list)
    only_b: list[tuple[str, str]] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regression]

    def table(self) -> str:
        def ms(x: tuple[float, float, int]) -> str:
            mean, std, _ = x
            if math.isnan(mean):
                return "—"
            return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"

        body = [
            [r.task, r.method, r.metric, "↑" if r.higher_is_better else "↓", ms(r.a), ms(r.b),
             "" if math.isnan(r.delta) else f"{r.delta:+.4f}", f"{r.tolerance:g}", r.status]
            for r in self.rows
        ]  # fmt: skip
        headers = ["task", "method", "metric", "", "A mean ± std", "B mean ± std", "B − A", "tol",
                   "status"]  # fmt: skip
        lines = [tabulate(body, headers=headers, disable_numparse=True)]
        for side, pairs in (("A", self.only_a), ("B", self.only_b)):
            lines += [f"only in {side} (not compared): {t} {m}" for t, m in pairs]
        lines.append(f"{len(self.regressions)} regression(s) beyond tolerance")
        return "\n".join(lines)


def direction(metric: str) -> bool:
    """True when higher is better; BenchError for a name outside benchmark.metrics.METRICS."""
    base = metric.split("@", 1)[0]
    if base not in METRICS:
        raise BenchError(f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}")
    return METRICS[base].higher_is_better


def parse_tolerances(specs: Sequence[str], default: float = 0.02) -> tuple[float, dict[str, float]]:
    """["0.02", "erasure_score=0.01"] -> (0.02, {"erasure_score": 0.01})."""
    per: dict[str, float] = {}
    for spec in specs:
        name, _, value = spec.rpartition("=")
        try:
            tol = float(value)
        except ValueError:
            raise BenchError(f"bad tolerance {spec!r}: want NUMBER or METRIC=NUMBER") from None
        if not tol >= 0:
            raise BenchError(f"bad tolerance {spec!r}: must be a number >= 0")
        if name:
            direction(name)
            per[name] = tol
        else:
            default = tol
    return default, per


def _stats(runs: pd.DataFrame | None, metric: str) -> tuple[float, float, int]:
    if runs is None or metric not in runs or runs[metric].isna().all():
        return (math.nan, math.nan, 0)
    v = runs[metric]
    return (float(v.mean(skipna=False)), float(v.std(ddof=1, skipna=False)), len(v))


def _status(a: float, b: float, up: bool, tol: float) -> str:
    if math.isnan(a) and math.isnan(b):
        return "n/a"
    if math.isnan(b):
        return "missing in B"
    if math.isnan(a):
        return "new in B"
    gain = (b - a) if up else (a - b)
    return "REGRESSION" if gain < -tol else ("better" if gain > tol else "ok")


def compare(
    a_dir: str | Path,
    b_dir: str | Path,
    tolerance: float = 0.02,
    metrics: Sequence[str] = DEFAULT_METRICS,
    per_metric: Mapping[str, float] | None = None,
) -> Comparison:
    """Compare results folder B against A. `per_metric` overrides `tolerance` by metric name
    (exact, e.g. "fe@10", or base name, e.g. "fe"); tolerances are absolute."""
    ups = {m: direction(m) for m in metrics}
    sides = []
    for d in (a_dir, b_dir):
        if not Path(d).is_dir():
            raise BenchError(f"results folder {d} does not exist")
        sides.append({k: g for k, g in load_results(d).groupby(KEYS, sort=True)})
    a, b = sides
    per = dict(per_metric or {})
    rows = []
    for key in sorted(a.keys() & b.keys()):
        for m, up in ups.items():
            tol = per.get(m, per.get(m.split("@", 1)[0], tolerance))
            sa, sb = _stats(a[key], m), _stats(b[key], m)
            rows.append(Row(*key, m, up, sa, sb, tol, _status(sa[0], sb[0], up, tol)))
    return Comparison(rows, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()))
