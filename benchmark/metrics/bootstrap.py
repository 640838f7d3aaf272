"""The one bootstrap of the harness (DESIGN §5): 95 % percentile intervals of registered metrics
over evaluation examples (stratified by pool), and over (seed, example) resamples across seeds;
paired wherever two models meet on the same examples. Numpy only: no torch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.metrics.evidence import Evidence, resample_indices
from benchmark.metrics.registry import compute, pool_size
from benchmark.metrics.stat import MetricStat
from benchmark.metrics.view import View

N_BOOT = 1000
LEVEL = 0.95


def interval(boots: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of the finite bootstrap replicates (NaN, NaN if none)."""
    finite = boots[np.isfinite(boots)]
    if not len(finite):
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(lo), float(hi)


def metric_stats(
    ev: Evidence, names: Sequence[str], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, MetricStat]:
    """Each metric's value with a 95 % percentile interval from a
    stratified bootstrap over the evaluation examples. Every model the metric compares (method,
    original, oracle) is resampled on the same examples: the intervals are paired."""
    rng = np.random.default_rng(seed)
    cache: dict = {}
    v = View(ev, cache=cache)
    values = {n: compute(v, n) for n in names}
    strata = ev.pool_rows()
    boots = np.empty((n_boot, len(names)))
    for b in range(n_boot):
        vb = View(ev, resample_indices(strata, rng), cache)
        boots[b] = [compute(vb, n) for n in names]
    out = {}
    for j, n in enumerate(names):
        lo, hi = interval(boots[:, j])
        out[n] = MetricStat(values[n], lo, hi, pool_size(v, n))
    return out


def seed_resampled_means(
    evidence: Sequence[Sequence[Evidence]],
    names: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap over (seed, example): each replicate draws seeds with replacement and, within
    each drawn seed, examples with replacement (per pool); `evidence[m][s]` is model m's evidence
    on seed s, every model holding the same examples and taking the same draw (paired). Returns
    (n_boot, models, names): each model's mean over the drawn seeds of each metric."""
    rng = np.random.default_rng(seed)
    n_models, n_seeds = len(evidence), len(evidence[0])
    strata = [evidence[0][s].pool_rows() for s in range(n_seeds)]
    caches: list[list[dict]] = [[{} for _ in range(n_seeds)] for _ in range(n_models)]
    out = np.zeros((n_boot, n_models, len(names)))
    for b in range(n_boot):
        for s in rng.integers(0, n_seeds, n_seeds):
            idx = resample_indices(strata[s], rng)
            for m in range(n_models):
                view = View(evidence[m][s], idx, caches[m][s])
                out[b, m] += [compute(view, n) for n in names]
    return out / n_seeds


def paired_differences(
    a: Sequence[Evidence],
    b: Sequence[Evidence],
    names: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """{name: (mean_b - mean_a, ci_low, ci_high)} over seeds, a and b aligned by seed and holding
    the same examples; the intervals from one paired (seed, example) bootstrap."""
    boots = seed_resampled_means([list(a), list(b)], names, n_boot, seed)
    out = {}
    for j, name in enumerate(names):
        diff = np.mean([compute(e, name) for e in b]) - np.mean([compute(e, name) for e in a])
        out[name] = (float(diff), *interval(boots[:, 1, j] - boots[:, 0, j]))
    return out
