"""Recompute a result's ranking metrics from its evidence parquet (DESIGN §5, §6).

Reads only the evidence frame (never the model or the task) and applies the metric definitions
of `benchmark.metrics` / `benchmark.unlearning_metrics` to it. One row per evaluation example,
with `pool` in {"retain_test", "forget_test", "forget_set"}, `collateral`, `target`, served
`topk` / `rank` (0-based, inf when absent), `original_topk` / `original_rank`,
`topk_in_forget`, and for forget-set rows `latent_rank`, `original_latent_rank` and
`relearn_rank`. Point values only (no intervals)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from benchmark import unlearning_metrics
from benchmark.metrics import ndcg_at_k, recall_at_k, target_ranks
from benchmark.unlearning_metrics import HEADLINE_PARTS, forget_efficacy, ratio

HEADLINE_K = 10  # the headline score always uses @10 (DESIGN §5)
COLUMNS = (
    "pool", "collateral", "position", "target", "topk", "rank", "original_topk", "original_rank",
    "topk_in_forget", "latent_rank", "original_latent_rank", "relearn_rank",
)  # fmt: skip
POOLS = ("retain_test", "forget_test", "forget_set")


def headline(fe10: float, fe_latent10: float, ndcg_ratio10: float) -> dict[str, float]:
    """forgetting_part, utility_part and erasure_score as the harness forms them."""
    parts = unlearning_metrics.headline(fe10, fe_latent10, ndcg_ratio10)
    return dict(zip(HEADLINE_PARTS, parts, strict=True))


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _lists(col: pd.Series, fill=-1, dtype=np.int64) -> np.ndarray:
    """A list column as an (n, longest row) array, short rows padded with `fill`."""
    rows = [np.asarray(r, dtype=dtype) for r in col]
    out = np.full((len(rows), max((len(r) for r in rows), default=0)), fill, dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def recompute_metrics(df: pd.DataFrame, ks: Iterable[int]) -> dict[str, float]:
    """Every ranking metric of DESIGN §5 recomputed from an evidence frame, for each K in `ks`,
    plus latent_forget_mean_rank and the headline (forgetting_part, utility_part, erasure_score
    at @10)."""
    ks = sorted(set(int(k) for k in ks))
    pool = df["pool"].to_numpy()
    rt, ft, fs = (pool == p for p in POOLS)
    col = rt & df["collateral"].to_numpy(dtype=bool)
    tests = rt | ft
    rank, orig = df["rank"].to_numpy(float), df["original_rank"].to_numpy(float)
    lat = df["latent_rank"].to_numpy(float)[fs]
    lat_o = df["original_latent_rank"].to_numpy(float)[fs]
    rel = df["relearn_rank"].to_numpy(float)[fs]
    in_f = _lists(df["topk_in_forget"][tests], False, bool)
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
            u, o = fn(rank, k), fn(orig, k)
            out[f"retained_{name}@{k}"] = _mean(u[rt])
            out[f"retained_{name}_ratio@{k}"] = ratio(u[rt], o[rt])
            out[f"collateral_{name}@{k}"] = _mean(u[col])
            out[f"forget_test_{name}@{k}"] = _mean(u[ft])
            out[f"forget_set_{name}@{k}"] = _mean(u[fs])
        out[f"collateral_ndcg_ratio@{k}"] = ratio(ndcg_at_k(rank, k)[col], ndcg_at_k(orig, k)[col])
        out[f"fe@{k}"] = forget_efficacy(recall_at_k(rank[fs], k), recall_at_k(orig[fs], k))
        out[f"ce@{k}"] = _mean(in_f[:, :k].mean(1))
        out[f"latent_forget_recall@{k}"] = _mean(recall_at_k(lat, k))
        out[f"fe_latent@{k}"] = forget_efficacy(recall_at_k(lat, k), recall_at_k(lat_o, k))
        out[f"relearn_forget_recall@{k}"] = _mean(recall_at_k(rel, k))
    out["latent_forget_mean_rank"] = _mean(lat + 1.0)
    k = HEADLINE_K
    out.update(
        headline(
            forget_efficacy(recall_at_k(rank[fs], k), recall_at_k(orig[fs], k)),
            forget_efficacy(recall_at_k(lat, k), recall_at_k(lat_o, k)),
            ratio(ndcg_at_k(rank, k)[rt], ndcg_at_k(orig, k)[rt]),
        )
    )
    return out


def evidence_problems(df: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, message) for an evidence frame that is malformed or inconsistent with itself:
    missing columns, unknown pools, or a rank column that is not the target's place in its
    top-K list."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        return [(c, "column missing from the evidence file") for c in missing]
    out = []
    bad_pools = sorted(set(df["pool"]) - set(POOLS))
    if bad_pools:
        out.append(("pool", f"unknown pools {bad_pools}"))
    target = df["target"].to_numpy()
    for lists, ranks in (("topk", "rank"), ("original_topk", "original_rank")):
        found = target_ranks(_lists(df[lists]), target)
        bad = np.flatnonzero(found != df[ranks].to_numpy(float))
        if len(bad):
            out.append((ranks, f"{len(bad)} rows disagree with {lists} (first: row {bad[0]})"))
    fs = (df["pool"] == "forget_set").to_numpy()
    for c in ("latent_rank", "original_latent_rank", "relearn_rank"):
        if df[c][fs].isna().any():
            out.append((c, "missing on forget_set rows"))
    return out
