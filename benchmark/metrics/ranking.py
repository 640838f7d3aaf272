"""Per-example ranking quantities, shared by the metric definitions
(`benchmark.metrics.definitions`) and by training code that scores its own validation ranks.
Numpy only: no torch.

Ranks are 0-based (inf when absent from the served list). With one relevant item per example,
Recall@K = 1[r < K] and NDCG@K = 1[r < K] / log2(r + 2).
"""

from __future__ import annotations

import numpy as np


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
