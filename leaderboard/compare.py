"""Compare two result sets (e.g. two TRACER versions) per (task identity, method) and metric (DESIGN
§5, §6): mean ± seed std on each side and the change B − A. B regresses on a metric only when it
moves in the metric's bad direction (benchmark.metrics.registry.METRICS) by more than the tolerance
AND significantly:

- with evidence on both sides (metrics computable from evidence, the seeds both sides share, the
  same examples): the 95 % interval of the paired difference B − A over (seed, example) resamples
  (`benchmark.metrics.bootstrap.paired_differences`: one paired bootstrap for all metrics of a
  method) must exclude 0; B − A is then the mean over the shared seeds;
- otherwise (no evidence, a model-level measurement such as unlearn_seconds, or examples that
  differ): the per-seed-mean intervals from the JSON files (mean over seeds of ci_low and of
  ci_high) must not overlap. A measurement without an interval has a zero-width one: any change
  beyond the tolerance counts.

A significant improvement beyond the tolerance is "better"; a change beyond the tolerance that is
not significant is "within noise". Usable in CI (exit status 1 on regression)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmark.metrics.bootstrap import N_BOOT, paired_differences
from benchmark.metrics.evidence import Evidence, read_evidence, same_examples
from benchmark.metrics.registry import METRICS, SUMMARY_METRICS, metric_base
from benchmark.results.record import ResultRecord
from leaderboard.table import MISSING, load_results
from tasks.errors import BenchError

KEYS = ["task_identity", "method"]
Interval = tuple[float, float, float]  # value, ci_low, ci_high


@dataclass
class Row:
    task: str
    method: str
    metric: str
    higher_is_better: bool
    a: tuple[float, float, int]  # mean, std (ddof=1; NaN for one seed), seeds
    b: tuple[float, float, int]
    tolerance: float
    status: str  # ok, better, within noise, REGRESSION, n/a, new in B, missing in B
    diff: Interval = (math.nan, math.nan, math.nan)  # B − A and its 95 % interval (paired)
    basis: str = ""  # "paired, seeds 0 1" or "json intervals"
    a_ci: tuple[float, float] = (math.nan, math.nan)  # per-seed-mean JSON intervals (fallback)
    b_ci: tuple[float, float] = (math.nan, math.nan)

    @property
    def delta(self) -> float:
        return self.diff[0] if self.basis.startswith("paired") else self.b[0] - self.a[0]

    @property
    def regression(self) -> bool:
        return self.status in ("REGRESSION", "missing in B")

    def interval_text(self) -> str:
        if self.basis.startswith("paired"):
            return f"[{self.diff[1]:+.4f}, {self.diff[2]:+.4f}]"
        if self.basis and not any(map(math.isnan, (*self.a_ci, *self.b_ci))):
            a, b = self.a_ci, self.b_ci
            return f"A [{a[0]:.4f}, {a[1]:.4f}] B [{b[0]:.4f}, {b[1]:.4f}]"
        return ""


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
                return MISSING
            return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"

        body = [
            [r.task, r.method, r.metric, "↑" if r.higher_is_better else "↓", ms(r.a), ms(r.b),
             "" if math.isnan(r.delta) else f"{r.delta:+.4f}", r.interval_text(), r.basis,
             f"{r.tolerance:g}", r.status]
            for r in self.rows
        ]  # fmt: skip
        headers = ["task", "method", "metric", "", "A mean ± std", "B mean ± std", "B − A",
                   "95% interval", "basis", "tol", "status"]  # fmt: skip
        lines = [tabulate(body, headers=headers, disable_numparse=True)]
        for side, pairs in (("A", self.only_a), ("B", self.only_b)):
            lines += [f"only in {side} (not compared): {t} {m}" for t, m in pairs]
        lines.append(f"{len(self.regressions)} regression(s): significant and beyond tolerance")
        return "\n".join(lines)


def direction(metric: str) -> bool:
    """True when higher is better; BenchError for a name outside
    benchmark.metrics.registry.METRICS."""
    base = metric_base(metric)
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


def json_interval(runs: pd.DataFrame, metric: str) -> tuple[float, float]:
    """The mean over seeds of the metric's ci_low and ci_high in the JSON files (the value itself
    where a file records no interval, e.g. a cost measurement)."""
    lows: list[float | None] = []
    highs: list[float | None] = []
    for path in runs["path"]:
        rec = ResultRecord.read(path)
        stat = rec.metrics.get(metric)
        if stat is not None:
            lows.append(stat.ci_low)
            highs.append(stat.ci_high)
        else:
            value = rec.cost.get(metric)
            lows.append(value)
            highs.append(value)
    lo, hi = (np.array([math.nan if x is None else x for x in v], float) for v in (lows, highs))
    return float(lo.mean()), float(hi.mean())


def _evidence(runs: pd.DataFrame) -> dict[int, Evidence]:
    return {
        int(s): Evidence.from_frame(read_evidence(Path(p)))
        for s, p in zip(runs["seed"], runs["evidence"], strict=True)
        if p
    }


def paired_intervals(
    a: pd.DataFrame, b: pd.DataFrame, metrics: Sequence[str], n_boot: int, seed: int = 0
) -> tuple[dict[str, Interval], list[int]]:
    """{metric: (B − A over the shared seeds, ci_low, ci_high)} for the metrics computable from
    evidence, from one paired (seed, example) bootstrap; and the shared seeds ({} and [] when the
    two sides share no seed with evidence on the same examples)."""
    names = [m for m in metrics if METRICS[metric_base(m)].fn is not None]
    if not names or len(set(a["seed"])) < len(a) or len(set(b["seed"])) < len(b):
        return {}, []
    ea, eb = _evidence(a), _evidence(b)
    shared = sorted(s for s in ea.keys() & eb.keys() if same_examples(ea[s], eb[s]))
    if not shared:
        return {}, []
    a_evs, b_evs = [ea[s] for s in shared], [eb[s] for s in shared]
    return paired_differences(a_evs, b_evs, names, n_boot, seed), shared


def _status(delta: float, significant: bool, up: bool, tol: float) -> str:
    gain = delta if up else -delta
    if abs(gain) <= tol:
        return "ok"
    if not significant:
        return "within noise"
    return "better" if gain > 0 else "REGRESSION"


def compare(
    a_dir: str | Path,
    b_dir: str | Path,
    tolerance: float = 0.02,
    metrics: Sequence[str] = SUMMARY_METRICS,
    per_metric: Mapping[str, float] | None = None,
    *,
    n_boot: int = N_BOOT,
) -> Comparison:
    """Compare results folder B against A (module docstring). `per_metric` overrides `tolerance`
    by metric name (exact, e.g. "ce@10", or base name, e.g. "ce"); tolerances are absolute."""
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
        paired, shared = paired_intervals(a[key], b[key], list(ups), n_boot)
        for m, up in ups.items():
            tol = per.get(m, per.get(metric_base(m), tolerance))
            task, method = key  # KEYS: (task_identity, method)
            row = Row(task, method, m, up, _stats(a[key], m), _stats(b[key], m), tol, "")
            if math.isnan(row.a[0]) or math.isnan(row.b[0]):
                row.status = {(True, True): "n/a", (False, True): "missing in B"}.get(
                    (math.isnan(row.a[0]), math.isnan(row.b[0])), "new in B"
                )
            elif m in paired and not math.isnan(paired[m][1]):
                row.diff = paired[m]
                row.basis = "paired, seeds " + " ".join(map(str, shared))
                lo, hi = paired[m][1:]
                row.status = _status(row.delta, lo > 0 or hi < 0, up, tol)
            else:
                row.basis = "json intervals"
                row.a_ci, row.b_ci = json_interval(a[key], m), json_interval(b[key], m)
                apart = row.b_ci[1] < row.a_ci[0] or row.b_ci[0] > row.a_ci[1]
                row.status = _status(row.delta, apart, up, tol)
            rows.append(row)
    return Comparison(rows, sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()))
