"""Ranking metrics, each defined once with its direction, and bootstrap intervals.

One relevant item per example (leave-one-out): with r the 0-based rank of the target in the
ranked list (inf when absent), Recall@K = 1[r < K] and NDCG@K = 1[r < K] / log2(r + 2) (the ideal
DCG is 1). A metric over a pool is the mean over its examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    description: str


METRICS: dict[str, Metric] = {}


def register(name: str, higher_is_better: bool, description: str) -> Metric:
    METRICS[name] = Metric(name, higher_is_better, description)
    return METRICS[name]


register("recall", True, "share of examples whose target is in the top K")
register("ndcg", True, "discounted gain of the target's position in the top K")
# the unlearning suite (DESIGN §5), computed in benchmark.unlearning_metrics; a name covers @K
for _name, _up, _text in (
    ("retained_recall", True, "Recall@K on retain-test users"),
    ("retained_ndcg", True, "NDCG@K on retain-test users"),
    ("retained_recall_ratio", True, "retained Recall@K / the original model's"),
    ("retained_ndcg_ratio", True, "retained NDCG@K / the original model's"),
    (
        "collateral_recall",
        True,
        "Recall@K on retain-test users whose item shares a level-1 code with F",
    ),
    ("collateral_ndcg", True, "NDCG@K on those users"),
    ("collateral_ndcg_ratio", True, "collateral NDCG@K / the original model's"),
    ("forget_set_recall", False, "served Recall@K on the forget set"),
    ("forget_set_ndcg", False, "served NDCG@K on the forget set"),
    ("forget_test_recall", False, "served Recall@K on forget-test users"),
    ("forget_test_ndcg", False, "served NDCG@K on forget-test users"),
    ("fe", True, "1 - forget-set Recall@K / the original's, clipped to [0, 1]"),
    ("ce", False, "share of all test users' top-K slots filled by forget items"),
    ("latent_forget_recall", False, "forget-set Recall@K, best of original/served SID, no bans"),
    ("latent_forget_mean_rank", True, "mean 1-based latent rank of forget-set targets"),
    ("fe_latent", True, "FE@K on the latent ranking"),
    ("relearn_forget_recall", False, "forget-set Recall@K after the relearning fine-tune"),
    ("relearn_oracle_forget_recall", False, "the same for the retrain oracle"),
    ("retain_geometry_spearman", True, "Spearman of retain items' pairwise cosine similarities"),
    ("code_purity_ratio", True, "level-1 code purity of retain items / the original tokenizer's"),
    ("unlearn_seconds", False, "wall seconds of the unlearning step"),
    ("peak_memory_mib", False, "peak resident memory during unlearning"),
    ("speedup_over_retrain", True, "retrain oracle seconds / unlearning seconds"),
    ("erasure_score", True, "harmonic mean of forgetting_part and utility_part"),
    ("forgetting_part", True, "min(FE@10, FE_latent@10)"),
    ("utility_part", True, "min(1, retained NDCG@10 ratio)"),
):
    register(_name, _up, _text)


def target_ranks(topk: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in its row of `topk` (N, K); inf where absent."""
    hit = topk == targets[:, None]
    return np.where(hit.any(1), hit.argmax(1), np.inf)


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each target in a full score matrix (N, n_items); ties count against the
    target (pessimistic), -inf scores rank last."""
    target_score = scores[np.arange(len(targets)), targets]
    return (scores > target_score[:, None]).sum(1) + (scores == target_score[:, None]).sum(1) - 1


def recall_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks < k).astype(np.float64)


def ndcg_at_k(ranks: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(ranks))
    hit = ranks < k
    out[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return out


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over examples."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summarize(values: np.ndarray, seed: int = 0) -> dict:
    """{'value', 'ci_low', 'ci_high', 'n'} of a per-example metric."""
    lo, hi = bootstrap_ci(values, seed=seed)
    return {
        "value": float(np.mean(values)) if len(values) else float("nan"),
        "ci_low": lo,
        "ci_high": hi,
        "n": int(len(values)),
    }
