"""Ranking metrics on hand-computed rankings."""

from __future__ import annotations

import math

import numpy as np

from benchmark.metrics import (
    METRICS,
    bootstrap_ci,
    ndcg_at_k,
    ranks_from_scores,
    recall_at_k,
    summarize,
    target_ranks,
)


def test_ranks_recall_and_ndcg_by_hand():
    topk = np.array([[4, 2, 9], [1, 3, 5], [7, 8, 6]])
    targets = np.array([2, 5, 0])  # ranks 1, 2, absent
    ranks = target_ranks(topk, targets)
    assert ranks[0] == 1 and ranks[1] == 2 and math.isinf(ranks[2])
    assert recall_at_k(ranks, 1).tolist() == [0, 0, 0]
    assert recall_at_k(ranks, 2).tolist() == [1, 0, 0]
    assert recall_at_k(ranks, 3).mean() == 2 / 3
    assert np.allclose(ndcg_at_k(ranks, 3), [1 / math.log2(3), 1 / math.log2(4), 0])
    assert ndcg_at_k(np.array([0.0]), 10)[0] == 1.0


def test_ranks_from_full_scores_count_ties_against_the_target():
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [-np.inf, 0.0, 1.0, 2.0]])
    assert ranks_from_scores(scores, np.array([2, 0])).tolist() == [2, 3]
    assert ranks_from_scores(scores, np.array([1, 3])).tolist() == [0, 0]


def test_bootstrap_interval_contains_the_mean_and_is_seeded():
    values = np.r_[np.ones(30), np.zeros(70)]
    lo, hi = bootstrap_ci(values, seed=1)
    assert lo < 0.3 < hi and 0.15 < lo and hi < 0.45
    assert bootstrap_ci(values, seed=1) == (lo, hi)
    s = summarize(values)
    assert s["value"] == 0.3 and s["n"] == 100
    assert bootstrap_ci(np.ones(5)) == (1.0, 1.0)


def test_directions_are_declared_once():
    assert METRICS["recall"].higher_is_better and METRICS["ndcg"].higher_is_better
