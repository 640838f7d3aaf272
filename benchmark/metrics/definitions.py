"""Every metric of DESIGN §5, defined once as a pure numpy function of a `View` of an evidence frame
and registered (`benchmark.metrics.registry`) with its direction, aggregation, pool, K and the
evidence columns it reads; then the model-level measurements. Loaded with the `benchmark.metrics`
package. Numpy only: no torch.

u = the unlearned model, 0 = the original model, o = the retrain oracle.
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics.registry import (
    HEADLINE,
    HEADLINE_K,
    reads,
    register_measurement,
    register_metric,
)
from benchmark.metrics.view import View

# ---- formulas ----------------------------------------------------------------------------------


def _mean(x: np.ndarray) -> float:
    # what x.mean() computes for a float64 vector, without its per-call overhead (the bootstrap
    # takes a hundred thousand means)
    return float(np.add.reduce(x) / len(x)) if len(x) else float("nan")


def ratio(a: np.ndarray, b: np.ndarray) -> float:
    """mean(a) / mean(b) on paired examples; NaN when b's mean is not positive."""
    if not len(b):
        return float("nan")
    mean_b = _mean(b)
    return _mean(a) / mean_b if mean_b > 0 else float("nan")


def harmonic(a: float, b: float) -> float:
    if not (np.isfinite(a) and np.isfinite(b)) or a + b <= 0:
        return 0.0
    return 2 * a * b / (a + b)


def served_forgetting_value(r_u: float, r_o: float, r_0: float) -> float:
    """1 - max(0, R_u - R_o) / (R_0 - R_o), clipped to [0, 1]: serving forget items more than the
    oracle costs, serving fewer does not. When the original serves them no more than the oracle
    (R_0 <= R_o) there is nothing to forget: 1 if R_u <= R_o, else 0."""
    if not all(np.isfinite(x) for x in (r_u, r_o, r_0)):
        return float("nan")
    if r_0 - r_o <= 0:
        return 1.0 if r_u <= r_o else 0.0
    return float(np.clip(1 - max(0.0, r_u - r_o) / (r_0 - r_o), 0, 1))


def oracle_match_value(q_u: np.ndarray, q_o: np.ndarray, q_0: np.ndarray) -> float:
    """max(0, 1 - sum|q_u - q_o| / sum|q_0 - q_o|): 0 for the original, 1 for the oracle."""
    if not len(q_u):
        return float("nan")
    num, den = np.abs(q_u - q_o).sum(), np.abs(q_0 - q_o).sum()
    if den <= 0:
        return 1.0 if num <= 0 else 0.0
    return float(max(0.0, 1 - num / den))


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    if not (len(a) and len(b)):
        return float("nan")
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(fa - fb).max())


# ---- served utility and forgetting per pool, at K ----------------------------------------------

_POOL_NAMES = {"rt": "retain_test", "ft": "forget_test", "fs": "forget_set", "col": "collateral"}


def _pool_mean(prefix: str, pool: str, what: str, column: str, down: bool, text: str) -> None:
    def fn(v: View, k: int) -> float:
        return _mean(v.ranked(what, column, k, getattr(v, pool)))

    register_metric(
        f"{prefix}_{what}",
        higher_is_better=not down,
        aggregation="mean",
        description=text,
        pool=_POOL_NAMES[pool],
        per_k=True,
        columns=(column,),
    )(fn)


def _pool_ratio(name: str, pool: str, what: str, ref: str, text: str) -> None:
    def fn(v: View, k: int) -> float:
        rows = getattr(v, pool)
        return ratio(v.ranked(what, "rank", k, rows), v.ranked(what, ref, k, rows))

    register_metric(
        name,
        higher_is_better=True,
        aggregation="ratio of paired means",
        description=text,
        pool=_POOL_NAMES[pool],
        per_k=True,
        columns=("rank", ref),
    )(fn)


for _what in ("recall", "ndcg"):
    _W = "Recall" if _what == "recall" else "NDCG"
    _pool_mean("retained", "rt", _what, "rank", False, f"{_W}@K on retain-test targets")
    _pool_mean(
        "collateral",
        "col",
        _what,
        "rank",
        False,
        f"{_W}@K on retain-test targets whose item shares a level-1 code with F",
    )
    _pool_mean("forget_test", "ft", _what, "rank", True, f"served {_W}@K on forget-test targets")
    _pool_mean("forget_set", "fs", _what, "rank", True, f"served {_W}@K on the forget set")
    _pool_mean(
        "relearn_forget",
        "fs",
        _what,
        "relearn_rank",
        True,
        f"forget-set {_W}@K after the relearning fine-tune",
    )
    _pool_mean(
        "relearn_oracle_forget",
        "fs",
        _what,
        "oracle_relearn_rank",
        True,
        "the same for the retrain oracle",
    )
    _pool_ratio(
        f"retained_{_what}_ratio",
        "rt",
        _what,
        "original_rank",
        f"retained {_W}@K / the original model's, paired on the same targets",
    )
    _pool_ratio(
        f"retained_{_what}_banned_ratio",
        "rt",
        _what,
        "banned_rank",
        f"retained {_W}@K / the original model's served with the forget items banned at decode "
        "(what filter serves), paired",
    )
    _pool_ratio(
        f"retained_{_what}_oracle_ratio",
        "rt",
        _what,
        "oracle_rank",
        f"retained {_W}@K / the retrain oracle's, paired",
    )
    _pool_ratio(
        f"collateral_{_what}_ratio",
        "col",
        _what,
        "original_rank",
        f"collateral {_W}@K / the original model's, paired",
    )


# ---- latent knowledge, exposure, relearning ----------------------------------------------------


@register_metric(
    "latent_forget_recall",
    higher_is_better=False,
    aggregation="mean",
    description="forget-set Recall@K of the latent ranking (every item scored, no "
    "bans, the better of original and served SID)",
    pool="latent_sample",
    per_k=True,
    columns=("latent_rank",),
)
def _latent_recall(v: View, k: int) -> float:
    return _mean(v.ranked("recall", "latent_rank", k, v.lat))


@register_metric(
    "ce",
    higher_is_better=False,
    aggregation="mean",
    pool="retain_test+forget_test",
    description="concept exposure: share of all test targets' top-K slots filled by forget items",
    per_k=True,
    columns=("forget_bits",),
)
def concept_exposure(v: View, k: int) -> float:
    return _mean(v.exposure("forget_bits", k, v.test))


@register_metric(
    "ce_excess",
    higher_is_better=False,
    aggregation="difference of paired means",
    pool="retain_test+forget_test",
    per_k=True,
    description="CE@K minus the retrain oracle's CE@K on the same targets",
    columns=("forget_bits", "oracle_forget_bits"),
)
def _ce_excess(v: View, k: int) -> float:
    return concept_exposure(v, k) - _mean(v.exposure("oracle_forget_bits", k, v.test))


@register_metric(
    "relearn_excess",
    higher_is_better=False,
    aggregation="difference of means",
    pool="forget_set",
    per_k=True,
    description="relearned forget-set Recall@K minus the relearned oracle's",
    columns=("relearn_rank", "oracle_relearn_rank"),
)
def _relearn_excess(v: View, k: int) -> float:
    return _mean(v.ranked("recall", "relearn_rank", k, v.fs)) - _mean(
        v.ranked("recall", "oracle_relearn_rank", k, v.fs)
    )


@register_metric(
    "served_forgetting",
    higher_is_better=True,
    aggregation="formula",
    pool="forget_set",
    description="1 - max(0, R_u - R_o) / (R_0 - R_o) on forget-set Recall@10, clipped to [0, 1]",
    columns=("rank", "oracle_rank", "original_rank"),
)
def served_forgetting(v: View, k: int | None = None) -> float:
    r = [_mean(v.ranked("recall", c, HEADLINE_K, v.fs))
         for c in ("rank", "oracle_rank", "original_rank")]  # fmt: skip
    return served_forgetting_value(*r)


@register_metric(
    "oracle_match",
    higher_is_better=True,
    aggregation="formula",
    pool="latent_sample",
    description="OM = max(0, 1 - sum|q_u - q_o| / sum|q_0 - q_o|) over forget-set "
    "latent percentiles: original 0, oracle 1",
    columns=("latent_rank", "oracle_latent_rank", "original_latent_rank", "n_candidates"),
)
def oracle_match(v: View, k: int | None = None) -> float:
    return oracle_match_value(
        v.q("latent_rank"), v.q("oracle_latent_rank"), v.q("original_latent_rank")
    )


@register_metric(
    "latent_ks",
    higher_is_better=False,
    aggregation="formula",
    pool="latent_sample",
    description="KS statistic between the method's and the oracle's forget-set latent percentiles",
    columns=("latent_rank", "oracle_latent_rank", "n_candidates"),
)
def _latent_ks(v: View, k: int | None = None) -> float:
    return ks_statistic(v.q("latent_rank"), v.q("oracle_latent_rank"))


@register_metric(
    "latent_forget_mean_rank",
    higher_is_better=True,
    aggregation="mean",
    pool="latent_sample",
    description="mean 1-based latent rank of forget-set targets",
    columns=("latent_rank",),
)
def _latent_mean_rank(v: View, k: int | None = None) -> float:
    return _mean(v.get("latent_rank", v.lat) + 1.0)


@register_metric(
    "oracle_latent_forget_mean_rank",
    higher_is_better=True,
    aggregation="mean",
    pool="latent_sample",
    description="the same for the retrain oracle (where the method should leave them)",
    columns=("oracle_latent_rank",),
)
def _oracle_latent_mean_rank(v: View, k: int | None = None) -> float:
    return _mean(v.get("oracle_latent_rank", v.lat) + 1.0)


# ---- the headline and its parts ----------------------------------------------------------------


@register_metric(
    "forgetting_part",
    higher_is_better=True,
    aggregation="formula",
    pool="forget_set",
    description="min(served_forgetting, oracle_match)",
    columns=reads("served_forgetting", "oracle_match"),
)
def forgetting_part(v: View, k: int | None = None) -> float:
    return min(served_forgetting(v), oracle_match(v))


@register_metric(
    "utility_part",
    higher_is_better=True,
    aggregation="formula",
    pool="retain_test",
    description="min(1, retained NDCG@10 ratio to the original model served with the forget "
    "items banned)",
    columns=("rank", "banned_rank"),
)
def utility_part(v: View, k: int | None = None) -> float:
    # against the ban, not the plain original: the top-K slots a removed concept frees are
    # nobody's bonus (DESIGN §5)
    r = ratio(
        v.ranked("ndcg", "rank", HEADLINE_K, v.rt),
        v.ranked("ndcg", "banned_rank", HEADLINE_K, v.rt),
    )
    return min(1.0, r) if np.isfinite(r) else float("nan")


@register_metric(
    HEADLINE,
    higher_is_better=True,
    aggregation="formula",
    pool="all",
    description="harmonic mean of forgetting_part and utility_part",
    columns=reads("forgetting_part", "utility_part"),
)
def erasure_score(v: View, k: int | None = None) -> float:
    return harmonic(forgetting_part(v), utility_part(v))


# ---- model-level measurements (recorded in the result, not computable from evidence) -----------

for _name, _up, _text in (
    ("retain_geometry_spearman", True, "Spearman of retain items' pairwise cosine similarities, "
     "original vs unlearned"),
    ("code_purity_ratio", True, "level-1 code purity of retain items / the original tokenizer's"),
    ("unlearn_seconds", False, "wall seconds of the unlearning step"),
    ("peak_memory_mib", False, "peak resident memory during unlearning"),
    ("speedup_over_retrain", True, "retrain oracle seconds / unlearning seconds"),
):  # fmt: skip
    register_measurement(_name, _up, _text)
