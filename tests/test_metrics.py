"""The protocol 2.1 metrics (benchmark.metrics.definitions) on hand-made evidence frames: each
formula, its anchors (original -> 0, oracle -> 1), over- and under-forgetting, the paired
bootstraps, and the evidence columns each metric declares."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from benchmark.metrics.bootstrap import (
    interval,
    metric_stats,
    paired_differences,
    seed_resampled_means,
)
from benchmark.metrics.definitions import (
    ks_statistic,
    oracle_match_value,
    served_forgetting_value,
)
from benchmark.metrics.evidence import COLUMNS, Evidence, slot_bits, target_ranks, with_oracle_of
from benchmark.metrics.ranking import ndcg_at_k, ranks_from_scores, recall_at_k
from benchmark.metrics.registry import (
    METRICS,
    compute,
    evidence_metric_names,
    higher_is_better,
    metric_base,
    reference_columns,
    register_metric,
)
from leaderboard.validate import SHARED_COLUMNS

N_ITEMS = 101  # q = latent_rank / 100 with nothing seen


def frame(
    n_rt: int = 40,
    n_fs: int = 50,
    rank=None,
    original_rank=None,
    oracle_rank=None,
    banned_rank=None,
    latent=None,
    original_latent=None,
    oracle_latent=None,
    relearn=None,
    oracle_relearn=None,
    forget_bits=None,
) -> Evidence:
    """Evidence with n_rt retain-test rows, 4 forget-test rows and n_fs forget-set rows. Served
    ranks default to 0 (a hit) everywhere, the banned original's to the original's; latent ranks
    are given for the forget set."""
    n = n_rt + 4 + n_fs
    zeros, nan_t = np.zeros(n), np.full(n_rt + 4, np.nan)

    def fs(values, default):
        v = np.full(n_fs, default, dtype=float) if values is None else np.asarray(values, float)
        return np.concatenate([nan_t, v])

    df = pd.DataFrame(
        {
            "pool": ["retain_test"] * n_rt + ["forget_test"] * 4 + ["forget_set"] * n_fs,
            "collateral": [i % 2 == 0 for i in range(n_rt)] + [False] * (4 + n_fs),
            "position": np.arange(n),
            "target": np.arange(n) % 7,
            "topk": [[0, 1]] * n,
            "rank": zeros if rank is None else rank,
            "original_rank": zeros if original_rank is None else original_rank,
            "oracle_rank": zeros if oracle_rank is None else oracle_rank,
            "banned_rank": (zeros if original_rank is None else original_rank)
            if banned_rank is None
            else banned_rank,
            "latent_rank": fs(latent, 10),
            "original_latent_rank": fs(original_latent, 10),
            "oracle_latent_rank": fs(oracle_latent, 80),
            "relearn_rank": fs(relearn, 0),
            "oracle_relearn_rank": fs(oracle_relearn, 0),
            "forget_bits": np.zeros(n, int) if forget_bits is None else forget_bits,
            "original_forget_bits": np.zeros(n, int),
            "oracle_forget_bits": np.zeros(n, int),
            "n_candidates": np.full(n, N_ITEMS),
        }
    )
    assert list(df.columns) == [c for c in COLUMNS if c in df.columns]
    return Evidence.from_frame(df)


def served(n_rt, n_fs, fs_ranks):
    """Served ranks: retain and forget-test rows hit at 0, the forget set as given."""
    return np.concatenate([np.zeros(n_rt + 4), fs_ranks])


def test_ranks_recall_and_ndcg_by_hand():
    topk = np.array([[4, 2, 9], [1, 3, 5], [7, 8, 6]])
    ranks = target_ranks(topk, np.array([2, 5, 0]))  # ranks 1, 2, absent
    assert ranks[0] == 1 and ranks[1] == 2 and math.isinf(ranks[2])
    assert recall_at_k(ranks, 2).tolist() == [1, 0, 0]
    assert np.allclose(ndcg_at_k(ranks, 3), [1 / math.log2(3), 1 / math.log2(4), 0])
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [-np.inf, 0.0, 1.0, 2.0]])
    assert ranks_from_scores(scores, np.array([2, 0])).tolist() == [2, 3]


def test_oracle_match_anchors_and_both_directions_of_error():
    q0, qo = np.full(10, 0.1), np.full(10, 0.8)
    assert oracle_match_value(q0, qo, q0) == 0.0  # the original model
    assert oracle_match_value(qo, qo, q0) == 1.0  # the oracle
    under = oracle_match_value(np.full(10, 0.45), qo, q0)  # halfway there
    over = oracle_match_value(np.full(10, 1.0), qo, q0)  # pushed below where the oracle is
    assert under == pytest.approx(0.5) and 0 < over < 1 and over == pytest.approx(1 - 0.2 / 0.7)
    assert oracle_match_value(np.full(10, 0.0), qo, q0) == 0.0  # worse than the original: floor


def test_oracle_match_from_evidence():
    ev = frame(latent=[10] * 50, original_latent=[10] * 50, oracle_latent=[80] * 50)
    assert compute(ev, "oracle_match") == 0.0
    ev = frame(latent=[80] * 50, original_latent=[10] * 50, oracle_latent=[80] * 50)
    assert compute(ev, "oracle_match") == 1.0
    ev = frame(latent=[100] * 50, original_latent=[10] * 50, oracle_latent=[80] * 50)
    assert 0 < compute(ev, "oracle_match") < 1
    assert (
        compute(ev, "latent_forget_mean_rank") == 101
        and compute(ev, "oracle_latent_forget_mean_rank") == 81
    )


def test_served_forgetting_costs_only_serving_more_than_the_oracle():
    assert served_forgetting_value(0.5, 0.1, 0.5) == 0.0  # as the original
    assert served_forgetting_value(0.1, 0.1, 0.5) == 1.0  # as the oracle
    assert served_forgetting_value(0.0, 0.1, 0.5) == 1.0  # fewer than the oracle: free
    assert served_forgetting_value(0.3, 0.1, 0.5) == pytest.approx(0.5)
    assert (
        served_forgetting_value(0.2, 0.3, 0.3) == 1.0
        and served_forgetting_value(0.4, 0.3, 0.2) == 0.0
    )  # nothing to forget
    n_rt, n_fs = 40, 50
    hits = np.r_[np.zeros(25), np.full(25, np.inf)]  # forget-set recall@10 0.5
    ev = frame(rank=served(n_rt, n_fs, hits), original_rank=served(n_rt, n_fs, hits),
               oracle_rank=served(n_rt, n_fs, np.full(50, np.inf)))  # fmt: skip
    assert compute(ev, "served_forgetting") == 0.0


def test_headline_is_the_harmonic_mean_of_its_min_parts():
    n_rt, n_fs = 40, 50
    orig_rt = np.r_[np.zeros(n_rt), np.zeros(4), np.full(n_fs, np.inf)]
    worse_rt = np.r_[np.full(n_rt // 2, 0.0), np.full(n_rt // 2, np.inf), np.zeros(4),
                     np.full(n_fs, np.inf)]  # fmt: skip
    ev = frame(rank=worse_rt, original_rank=orig_rt, oracle_rank=orig_rt,
               latent=[45] * 50, original_latent=[10] * 50, oracle_latent=[80] * 50)  # fmt: skip
    assert compute(ev, "utility_part") == pytest.approx(0.5)
    assert compute(ev, "served_forgetting") == 1.0
    assert compute(ev, "oracle_match") == pytest.approx(0.5)
    assert compute(ev, "forgetting_part") == pytest.approx(0.5)
    assert compute(ev, "erasure_score") == pytest.approx(0.5)
    # hiding: served perfectly, latent where the original had it -> 0
    hide = frame(rank=orig_rt, original_rank=orig_rt, oracle_rank=orig_rt,
                 latent=[10] * 50, original_latent=[10] * 50)  # fmt: skip
    assert compute(hide, "erasure_score") == 0.0
    assert compute(hide, "retained_ndcg_ratio@10") == 1.0


def test_utility_is_taken_against_the_original_served_with_the_ban():
    """Forget items held retain targets' slots in the original's lists: with the ban those
    targets move up (the freed slots). Whoever serves as the ban does keeps utility 1.0; the
    original itself pays for the slots it gives the concept; filter's headline stays 0."""
    n_rt, n_fs = 40, 50
    fs_hidden = np.full(n_fs, np.inf)
    # the original ranks half the retain targets at 3 (a forget item above them), the ban at 2
    orig = np.r_[np.zeros(n_rt // 2), np.full(n_rt // 2, 3.0), np.zeros(4), fs_hidden]
    ban = np.r_[np.zeros(n_rt // 2), np.full(n_rt // 2, 2.0), np.full(4, np.inf), fs_hidden]
    latent = {"original_latent": [10] * 50, "oracle_latent": [80] * 50}
    filt = frame(rank=ban, original_rank=orig, oracle_rank=ban, banned_rank=ban,
                 latent=[10] * 50, **latent)  # fmt: skip
    assert compute(filt, "utility_part") == 1.0
    assert compute(filt, "retained_ndcg_banned_ratio@10") == 1.0
    gain = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(5))  # NDCG(ban) / NDCG(original)
    assert compute(filt, "retained_ndcg_ratio@10") == pytest.approx(gain)
    assert compute(filt, "erasure_score") == 0.0  # hiding: latent ranks where the original's
    original = frame(rank=orig, original_rank=orig, oracle_rank=ban, banned_rank=ban,
                     latent=[10] * 50, **latent)  # fmt: skip
    assert compute(original, "utility_part") == pytest.approx(1 / gain) and 1 / gain < 1
    assert compute(original, "retained_ndcg_ratio@10") == 1.0
    # a clean removal as good as the ban: both parts 1
    clean = frame(rank=ban, original_rank=orig, oracle_rank=ban, banned_rank=ban,
                  latent=[80] * 50, **latent)  # fmt: skip
    assert compute(clean, "erasure_score") == 1.0
    assert compute(clean, "retained_ndcg_oracle_ratio@10") == 1.0


def test_ks_exposure_and_relearn_excess():
    assert ks_statistic(np.array([0.1, 0.2]), np.array([0.1, 0.2])) == 0.0
    assert ks_statistic(np.array([0.1, 0.2]), np.array([0.8, 0.9])) == 1.0
    assert ks_statistic(np.array([0.1, 0.9]), np.array([0.1, 0.2])) == 0.5
    slots = np.array([[True, False, True], [False, False, False]])
    assert slot_bits(slots).tolist() == [5, 0]
    n = 40 + 4 + 50
    bits = np.zeros(n, int)
    bits[:44] = 0b11  # every test target: 2 of its first slots hold forget items
    ev = frame(forget_bits=bits)
    assert compute(ev, "ce@5") == pytest.approx(2 / 5) and compute(ev, "ce@1") == 1.0
    assert compute(ev, "ce_excess@5") == pytest.approx(2 / 5)  # the oracle shows none
    ev = frame(relearn=[0] * 30 + [50] * 20, oracle_relearn=[0] * 10 + [50] * 40)
    assert compute(ev, "relearn_excess@10") == pytest.approx(0.6 - 0.2)


def test_intervals_are_seeded_paired_and_contain_the_value():
    rng = np.random.default_rng(0)
    latent = rng.integers(0, 100, 50)
    ev = frame(latent=latent, original_latent=[10] * 50)
    names = ["oracle_match", "erasure_score", "retained_ndcg@10"]
    a = metric_stats(ev, names, n_boot=200, seed=3)
    assert a == metric_stats(ev, names, n_boot=200, seed=3)
    s = a["oracle_match"]
    assert s.ci_low < s.value < s.ci_high and s.n == 50
    # the same model against itself: a paired difference of exactly 0 in every resample
    diff, lo, hi = paired_differences([ev, ev], [ev, ev], ["erasure_score"], 100)["erasure_score"]
    assert diff == lo == hi == 0.0
    better = frame(latent=np.minimum(latent + 30, 100), original_latent=[10] * 50)
    diff, lo, hi = paired_differences([ev], [better], ["oracle_match"], 200)["oracle_match"]
    assert diff > 0 and lo > 0  # clearly better on the same examples
    # a model's interval over (seed, example) resamples holds its mean over seeds
    boots = seed_resampled_means([[ev, better]], ["oracle_match"], 200)[:, 0, 0]
    lo, hi = interval(boots)
    mean = np.mean([compute(e, "oracle_match") for e in (ev, better)])
    assert lo <= mean <= hi


def test_noise_ceiling_swaps_in_another_seeds_oracle():
    a = frame(latent=[80] * 50, oracle_latent=[80] * 50)
    b = frame(latent=[70] * 50, oracle_latent=[60] * 50)
    assert compute(a, "oracle_match") == 1.0
    assert compute(with_oracle_of(a, b), "oracle_match") < 1.0
    with pytest.raises(ValueError, match="same examples"):
        with_oracle_of(a, frame(n_fs=49))


def test_every_metric_is_registered_once_with_a_direction():
    names = evidence_metric_names((5, 10))
    assert "erasure_score" in names and "ce_excess@10" in names and "oracle_match" in names
    assert "fe@10" not in names  # protocol 1.x's forgetting against zero is gone
    assert higher_is_better("oracle_match") and not higher_is_better("latent_ks")
    assert not higher_is_better("relearn_excess@10") and higher_is_better("erasure_score")
    assert all(isinstance(m.higher_is_better, bool) for m in METRICS.values())


def test_metric_modules_do_not_import_torch():
    code = (
        "import sys, benchmark.metrics.registry, benchmark.metrics.bootstrap, "
        "benchmark.metrics.evidence, "
        "benchmark.results.record, "
        "leaderboard.validate; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_shared_columns_are_derived_from_what_the_metrics_read():
    """One original model and one oracle per (task, seed): validate compares these columns across
    methods. Derived from the registered metrics' declarations, they are exactly the examples'
    identity and the original model's (its tokenizer's collateral flag included) and the oracle's
    evidence."""
    expected = {
        "pool", "position", "target", "n_candidates", "collateral", "original_rank",
        "original_forget_bits", "original_latent_rank", "banned_rank", "oracle_rank",
        "oracle_forget_bits", "oracle_latent_rank", "oracle_relearn_rank",
    }  # fmt: skip
    assert set(reference_columns()) == expected and len(reference_columns()) == len(expected)
    assert SHARED_COLUMNS == reference_columns()


def test_every_declared_column_is_an_evidence_column():
    assert all(m.columns for m in METRICS.values() if m.fn is not None)
    undeclared = {m.name: c for m in METRICS.values() for c in m.columns if c not in COLUMNS}
    assert undeclared == {}
    with pytest.raises(ValueError, match="latent_percentile"):
        register_metric(
            "bad", higher_is_better=True, aggregation="mean", description="", pool="forget_set",
            columns=("latent_percentile",),
        )  # fmt: skip
    assert "bad" not in METRICS


def _perturbed(ev: Evidence, columns: set[str], rng: np.random.Generator) -> Evidence:
    """`ev` with every column in `columns` replaced by unrelated values."""
    n, new = len(ev), {}
    for c in columns:
        if c == "collateral":
            new[c] = ~ev[c]
        elif ev[c].dtype.kind == "f":  # ranks: other values, another NaN pattern
            new[c] = np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 30, n).astype(float))
        else:  # bit masks, positions, targets, candidate counts
            new[c] = rng.integers(2, 1 << 12, n).astype(np.int64)
    return ev.with_columns(**new)


def test_a_metric_reads_no_column_it_does_not_declare():
    rng = np.random.default_rng(3)
    n_rt, n_fs = 40, 50
    n = n_rt + 4 + n_fs

    def ranks(size):
        return rng.integers(0, 25, size).astype(float)

    ev = frame(
        n_rt, n_fs, rank=ranks(n), original_rank=ranks(n), oracle_rank=ranks(n),
        banned_rank=ranks(n), latent=ranks(n_fs), original_latent=ranks(n_fs),
        oracle_latent=ranks(n_fs), relearn=ranks(n_fs), oracle_relearn=ranks(n_fs),
        forget_bits=rng.integers(0, 1 << 10, n),
    )  # fmt: skip
    ev = ev.with_columns(
        original_forget_bits=rng.integers(0, 1 << 10, n),
        oracle_forget_bits=rng.integers(0, 1 << 10, n),
    )
    for name in evidence_metric_names((5, 10)):
        declared = METRICS[metric_base(name)].columns
        other = _perturbed(ev, set(ev.cols) - set(declared), rng)
        assert compute(other, name) == pytest.approx(compute(ev, name), nan_ok=True), name
