"""Significance ranks, the noise ceiling and the joint bootstrap, on hand-made evidence frames
(benchmark.metrics.evidence.COLUMNS) whose erasure score is set by how many forget-set examples a
method leaves where the oracle leaves them (oracle match), every other part held at 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import N_FORGET, frame, matched, write_cell

from benchmark.metrics.evidence import with_oracle_of
from benchmark.metrics.registry import compute
from leaderboard.table import (
    INTERVAL_METRICS,
    format_table,
    leaderboard_table,
    load_results,
)


@pytest.fixture
def ranked(tmp_path: Path) -> pd.DataFrame:
    """best: all examples matched; a and b: 320 of 400 each, b's a rotation of a's (the same
    mean, indistinguishable); worse: 120 of 400. Seeds 0 and 1."""
    for seed in (0, 1):
        write_cell(tmp_path, "best", seed, frame(matched(N_FORGET)))
        write_cell(tmp_path, "a", seed, frame(matched(320)))
        write_cell(tmp_path, "b", seed, frame(matched(320, shift=5)))
        write_cell(tmp_path, "worse", seed, frame(matched(120, shift=seed)))
    return leaderboard_table(load_results(tmp_path), n_boot=300)


def test_indistinguishable_methods_share_a_rank(ranked: pd.DataFrame) -> None:
    ranks = dict(zip(ranked["method"], ranked["rank"], strict=True))
    assert ranks == {"best": 1, "a": 2, "b": 2, "worse": 4}
    assert set(ranked["rank_basis"]) == {"paired"}
    a, b = (ranked[ranked["method"] == m].iloc[0] for m in ("a", "b"))
    assert a["erasure_score_mean"] == b["erasure_score_mean"] == pytest.approx(2 * 0.8 / 1.8)
    # every row carries the (seed, example) interval of its erasure score and parts
    for _, row in ranked.iterrows():
        for name in INTERVAL_METRICS:
            lo, hi = row[f"{name}_lo"], row[f"{name}_hi"]
            assert lo <= row[f"{name}_mean"] + 1e-12 and row[f"{name}_mean"] <= hi + 1e-12
    assert a["erasure_score_lo"] < a["erasure_score_mean"] < a["erasure_score_hi"]
    [pairs] = ranked.attrs["separated_pairs"].values()
    assert pairs == (5, 6)  # every pair but (a, b)
    md = format_table(ranked, "md")
    assert "significantly separated pairs: 5 of 6" in md and "erasure_score 95% CI" in md


def test_mean_alone_does_not_rank(tmp_path: Path) -> None:
    """A method whose mean is a little higher but within the noise shares the rank; the ranking
    by mean (no evidence) would have split them."""
    for seed in (0, 1):
        write_cell(tmp_path, "a", seed, frame(matched(320)))
        mixed = matched(320) ^ (np.arange(N_FORGET) % 40 == 0)  # 8 flipped down, 2 up
        mixed[-12:] = True  # and 12 more up: +6 net
        write_cell(tmp_path, "b", seed, frame(mixed))
    table = leaderboard_table(load_results(tmp_path), n_boot=300)
    assert table["method"].tolist() == ["b", "a"]  # b's mean is higher ...
    assert table["rank"].tolist() == [1, 1]  # ... but not significantly
    for f in tmp_path.rglob("*.evidence.parquet"):
        f.unlink()
    by_mean = leaderboard_table(load_results(tmp_path))
    assert by_mean["rank"].tolist() == [1, 2] and set(by_mean["rank_basis"]) == {"mean"}
    assert "ranked by mean, not significance" in format_table(by_mean, "md")


def test_noise_ceiling(tmp_path: Path) -> None:
    """The retrain row of two seeds is each seed scored against the other seed's oracle (here the
    two oracles leave forget items at latent rank 50 and 60): ranked like the methods."""
    evs = [write_cell(tmp_path, "retrain", s, frame(matched(N_FORGET), 50.0 + 10 * s))
           for s in (0, 1)]  # fmt: skip
    for s in (0, 1):
        write_cell(tmp_path, "a", s, frame(matched(200), 50.0 + 10 * s))
    table = leaderboard_table(load_results(tmp_path), n_boot=300)
    ceiling = table[table["method"] == "retrain"].iloc[0]
    assert ceiling["role"] == "noise ceiling" and ceiling["rank"] == 1
    # OM of seed 0 against oracle 1: 1 - |0.5 - 0.6| / |0 - 0.6|; seed 1 against 0: 1 - 0.1 / 0.5
    om = [1 - 0.1 / 0.6, 1 - 0.1 / 0.5]
    assert ceiling["oracle_match_mean"] == pytest.approx(np.mean(om))
    assert ceiling["erasure_score_mean"] == pytest.approx(np.mean([2 * x / (1 + x) for x in om]))
    expected = [compute(with_oracle_of(evs[s], evs[1 - s]), "erasure_score") for s in (0, 1)]
    assert ceiling["erasure_score_mean"] == pytest.approx(np.mean(expected))
    assert ceiling["erasure_score_mean"] < 1.0  # not the trivial 1.0 of its JSON files
    assert ceiling["unlearn_seconds_mean"] == 1.0  # model-level measurements kept
    a = table[table["method"] == "a"].iloc[0]
    assert a["rank"] == 2 and a["oracle_match_mean"] == pytest.approx(0.5)  # below the ceiling
    md = format_table(table, "md")
    assert "retrain 1.0 (noise ceiling)" in md and "noise ceiling: retrain scored" in md
