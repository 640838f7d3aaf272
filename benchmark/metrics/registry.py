"""Every metric of DESIGN §5, defined once as a pure numpy function of an evidence frame
(`benchmark.metrics.evidence.Evidence`) and registered with its direction, aggregation and K, in the
manner of lm-evaluation-harness's `register_metric`. The runner, `validate`, the leaderboard and
`compare` all call these functions; bootstrap intervals (one implementation, paired wherever two
models meet on the same examples) live here too. Numpy only: no torch.

Ranks are 0-based (inf when absent from the served list). With one relevant item per example,
Recall@K = 1[r < K] and NDCG@K = 1[r < K] / log2(r + 2). u = the unlearned model, 0 = the
original model, o = the retrain oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from benchmark.metrics.evidence import Evidence, resample_indices

HEADLINE = "erasure_score"
HEADLINE_K = 10  # the headline's served forgetting and utility are taken at @10
N_BOOT = 1000
LEVEL = 0.95
T = TypeVar("T")


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    aggregation: str  # how examples become the value: mean, ratio of means, formula, model
    description: str
    pool: str  # the examples it is computed over ("" for model-level measurements)
    per_k: bool = False  # the name takes "@K"
    fn: Callable | None = None  # fn(view, k) -> float; None: not computable from evidence


METRICS: dict[str, Metric] = {}


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    aggregation: str,
    description: str,
    pool: str = "",
    per_k: bool = False,
) -> Callable:
    def deco(fn: Callable | None) -> Callable | None:
        METRICS[name] = Metric(name, higher_is_better, aggregation, description, pool, per_k, fn)
        return fn

    return deco


def register_measurement(name: str, higher_is_better: bool, description: str) -> None:
    """A model-level measurement (geometry, cost): recorded in the result, not in the evidence."""
    register_metric(
        name, higher_is_better=higher_is_better, aggregation="model", description=description
    )(None)


def parse_metric(name: str) -> tuple[str, int | None]:
    """The one parse of a metric name: `ce_excess@10` -> ("ce_excess", 10), `oracle_match` ->
    ("oracle_match", None); a K that is not a positive integer written plainly -> (name, None)
    with the base being everything before "@" (so such a name is never a known per-K metric)."""
    base, at, k = name.partition("@")
    if not at:
        return base, None
    return base, (int(k) if k.isdigit() and str(int(k)) == k and int(k) > 0 else None)


def metric_base(name: str) -> str:
    return parse_metric(name)[0]


def metric_k(name: str) -> int | None:
    return parse_metric(name)[1]


def higher_is_better(name: str) -> bool:
    return METRICS[metric_base(name)].higher_is_better


# ---- per-example functions ---------------------------------------------------------------------


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks < k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(ranks))
    hit = ranks < k
    out[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return out


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in a full score matrix (N, n_items); ties count against the
    target (pessimistic), -inf scores rank last."""
    target_score = scores[np.arange(len(targets)), targets]
    return (scores > target_score[:, None]).sum(1) + (scores == target_score[:, None]).sum(1) - 1


def bits_share(bits: np.ndarray, k: int) -> np.ndarray:
    """Share of the first k slots flagged in each bit mask."""
    masked = bits & ((1 << k) - 1)
    counts = np.zeros(len(bits))
    for j in range(k):
        counts += (masked >> j) & 1
    return counts / k


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


_RANKERS = {"recall": recall_at_k, "ndcg": ndcg_at_k}


# ---- a view of the evidence with its pools resolved once --------------------------------------


class View:
    """Evidence (optionally a bootstrap resample `idx` of it) with its pools resolved once, as
    row indices into the full evidence (in the resample's order). Per-example quantities (recall
    of a rank column at K, exposure shares...) are computed once on the full evidence, shared by
    every resample through `cache`, and only indexed by a pool's rows per resample."""

    def __init__(self, ev: Evidence, idx: np.ndarray | None = None, cache: dict | None = None):
        self.ev = ev
        self._shared = cache if cache is not None else {}
        masks = self.per_row("pool masks", lambda: _pool_masks(ev))
        rows = np.arange(len(ev)) if idx is None else idx
        self.rt, self.ft, self.fs, self.col, self.test, self.lat = (rows[m[rows]] for m in masks)

    def per_row(self, key: Hashable, fn: Callable[[], T]) -> T:
        """fn() over the full evidence, computed once per evidence (cached)."""
        if key not in self._shared:
            self._shared[key] = fn()
        return self._shared[key]

    def get(self, column: str, rows: np.ndarray) -> np.ndarray:
        return self.per_row(column, lambda: self.ev[column])[rows]

    def ranked(self, what: str, column: str, k: int, rows: np.ndarray) -> np.ndarray:
        """Recall@k or NDCG@k (`what`) of a rank column, per example."""
        fn = _RANKERS[what]
        return self.per_row((what, column, k), lambda: fn(self.ev[column], k))[rows]

    def exposure(self, column: str, k: int, rows: np.ndarray) -> np.ndarray:
        return self.per_row(("bits", column, k), lambda: bits_share(self.ev[column], k))[rows]

    def q(self, column: str) -> np.ndarray:
        """Latent percentile of forget-set targets: 0 = top of the catalogue, 1 = bottom."""

        def full() -> np.ndarray:
            return self.ev[column] / np.maximum(self.ev["n_candidates"] - 1, 1)

        return self.per_row(("q", column), full)[self.lat]


def _pool_masks(ev: Evidence) -> tuple[np.ndarray, ...]:
    """Boolean masks over the full evidence: retain-test, forget-test, forget set, collateral,
    every test target, the latent sample (forget-set rows with latent ranks)."""
    pool = ev["pool"]
    rt, ft, fs = pool == "retain_test", pool == "forget_test", pool == "forget_set"
    lat = fs & ~np.isnan(ev["latent_rank"])
    return rt, ft, fs, rt & ev["collateral"], rt | ft, lat


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


@register_metric(
    "latent_forget_recall",
    higher_is_better=False,
    aggregation="mean",
    description="forget-set Recall@K of the latent ranking (every item scored, no "
    "bans, the better of original and served SID)",
    pool="latent_sample",
    per_k=True,
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
)
def _latent_ks(v: View, k: int | None = None) -> float:
    return ks_statistic(v.q("latent_rank"), v.q("oracle_latent_rank"))


@register_metric(
    "latent_forget_mean_rank",
    higher_is_better=True,
    aggregation="mean",
    pool="latent_sample",
    description="mean 1-based latent rank of forget-set targets",
)
def _latent_mean_rank(v: View, k: int | None = None) -> float:
    return _mean(v.get("latent_rank", v.lat) + 1.0)


@register_metric(
    "oracle_latent_forget_mean_rank",
    higher_is_better=True,
    aggregation="mean",
    pool="latent_sample",
    description="the same for the retrain oracle (where the method should leave them)",
)
def _oracle_latent_mean_rank(v: View, k: int | None = None) -> float:
    return _mean(v.get("oracle_latent_rank", v.lat) + 1.0)


@register_metric(
    "forgetting_part",
    higher_is_better=True,
    aggregation="formula",
    pool="forget_set",
    description="min(served_forgetting, oracle_match)",
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
)
def erasure_score(v: View, k: int | None = None) -> float:
    return harmonic(forgetting_part(v), utility_part(v))


for _name, _up, _text in (
    ("retain_geometry_spearman", True, "Spearman of retain items' pairwise cosine similarities, "
     "original vs unlearned"),
    ("code_purity_ratio", True, "level-1 code purity of retain items / the original tokenizer's"),
    ("unlearn_seconds", False, "wall seconds of the unlearning step"),
    ("peak_memory_mib", False, "peak resident memory during unlearning"),
    ("speedup_over_retrain", True, "retrain oracle seconds / unlearning seconds"),
):  # fmt: skip
    register_measurement(_name, _up, _text)

# the measurements that measure the machine (time, memory), not the model: they differ between
# runs of the same cell, so equality checks of two runs leave them out
COST_METRICS = ("unlearn_seconds", "peak_memory_mib", "speedup_over_retrain")
# what a one-line summary of a cell shows (the Hub card's table, `compare`'s default): the
# headline, its parts and the metrics that explain them
SUMMARY_METRICS = (
    HEADLINE, "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
    "retained_ndcg_banned_ratio@10", "ce_excess@10", "relearn_excess@10",
)  # fmt: skip


# ---- computing metrics and intervals -----------------------------------------------------------


def evidence_metric_names(ks: Iterable[int]) -> list[str]:
    """Every metric computable from evidence, '@K' expanded over `ks`."""
    ks = sorted(set(int(k) for k in ks))
    out = []
    for m in METRICS.values():
        if m.fn is None:
            continue
        out.extend([f"{m.name}@{k}" for k in ks] if m.per_k else [m.name])
    return out


def _split(name: str) -> tuple[Callable, int | None]:
    """A metric name's evidence function fn(view, k) and its K."""
    base, k = parse_metric(name)
    fn = METRICS[base].fn if base in METRICS else None
    if fn is None or (k is None) == METRICS[base].per_k:
        raise KeyError(f"metric {name!r} is not computable from evidence")
    return fn, k


def compute(ev: Evidence | View, name: str) -> float:
    fn, k = _split(name)
    return float(fn(ev if isinstance(ev, View) else View(ev), k))


def compute_all(ev: Evidence, names: Sequence[str]) -> dict[str, float]:
    v = View(ev)
    return {n: compute(v, n) for n in names}


def interval(boots: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of the finite bootstrap replicates (NaN, NaN if none)."""
    finite = boots[np.isfinite(boots)]
    if not len(finite):
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2])
    return float(lo), float(hi)


def pool_size(v: View, name: str) -> int:
    pool = METRICS[metric_base(name)].pool
    masks = {"retain_test": v.rt, "forget_test": v.ft, "forget_set": v.fs, "collateral": v.col,
             "retain_test+forget_test": v.test, "latent_sample": v.lat}  # fmt: skip
    return len(masks[pool]) if pool in masks else len(v.ev)


def metric_stats(
    ev: Evidence, names: Sequence[str], n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, dict]:
    """{name: {value, ci_low, ci_high, n}}: each value with a 95 % percentile interval from a
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
        out[n] = {"value": values[n], "ci_low": lo, "ci_high": hi, "n": pool_size(v, n)}
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
