"""Recompute a result's ranking metrics from its evidence parquet (DESIGN §5, §6).

An independent re-implementation of the definitions in `benchmark.unlearning_metrics`, reading
only the evidence frame: one row per evaluation example, with `pool` in {"retain_test",
"forget_test", "forget_set"}, `collateral`, `target`, served `topk` / `rank` (0-based, inf when
absent), `original_topk` / `original_rank`, `topk_in_forget`, and for forget-set rows
`latent_rank`, `original_latent_rank` and `relearn_rank`. Point values only (no intervals)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

HEADLINE_K = 10  # the headline score always uses @10 (DESIGN §5)
COLUMNS = (
    "pool", "collateral", "position", "target", "topk", "rank", "original_topk", "original_rank",
    "topk_in_forget", "latent_rank", "original_latent_rank", "relearn_rank",
)  # fmt: skip
POOLS = ("retain_test", "forget_test", "forget_set")


def recall(ranks: np.ndarray, k: int) -> np.ndarray:
    return (ranks < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros(len(ranks))
    hit = ranks < k
    out[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    return out


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else float("nan")


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() / b.mean()) if len(b) and b.mean() > 0 else float("nan")


def _fe(unl: np.ndarray, orig: np.ndarray) -> float:
    r = _ratio(unl, orig)
    return float(np.clip(1 - r, 0, 1)) if np.isfinite(r) else float("nan")


def harmonic(forget: float, utility: float) -> float:
    """The erasure score of its two parts; 0 when both are 0 or either is undefined."""
    if not (np.isfinite(forget) and np.isfinite(utility)) or forget + utility <= 0:
        return 0.0
    return 2 * forget * utility / (forget + utility)


def headline(fe10: float, fe_latent10: float, ndcg_ratio10: float) -> dict[str, float]:
    """forgetting_part, utility_part and erasure_score as the harness forms them (Python's
    min, argument order included: a NaN first argument wins, a NaN second one loses)."""
    f = min(fe10, fe_latent10)
    u = min(1.0, ndcg_ratio10)
    return {"forgetting_part": f, "utility_part": u, "erasure_score": harmonic(f, u)}


def _slots(col: pd.Series) -> np.ndarray:
    """A list-of-bool column as an (n, longest row) array, short rows padded with False."""
    rows = [np.asarray(r, dtype=bool) for r in col]
    out = np.zeros((len(rows), max((len(r) for r in rows), default=0)), dtype=bool)
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
    in_f = _slots(df["topk_in_forget"][tests])
    out: dict[str, float] = {}
    for k in ks:
        for name, fn in (("recall", recall), ("ndcg", ndcg)):
            u, o = fn(rank, k), fn(orig, k)
            out[f"retained_{name}@{k}"] = _mean(u[rt])
            out[f"retained_{name}_ratio@{k}"] = _ratio(u[rt], o[rt])
            out[f"collateral_{name}@{k}"] = _mean(u[col])
            out[f"forget_test_{name}@{k}"] = _mean(u[ft])
            out[f"forget_set_{name}@{k}"] = _mean(u[fs])
        out[f"collateral_ndcg_ratio@{k}"] = _ratio(ndcg(rank, k)[col], ndcg(orig, k)[col])
        out[f"fe@{k}"] = _fe(recall(rank[fs], k), recall(orig[fs], k))
        out[f"ce@{k}"] = _mean(in_f[:, :k].mean(1))
        out[f"latent_forget_recall@{k}"] = _mean(recall(lat, k))
        out[f"fe_latent@{k}"] = _fe(recall(lat, k), recall(lat_o, k))
        out[f"relearn_forget_recall@{k}"] = _mean(recall(rel, k))
    out["latent_forget_mean_rank"] = _mean(lat + 1.0)
    k = HEADLINE_K
    out.update(
        headline(
            _fe(recall(rank[fs], k), recall(orig[fs], k)),
            _fe(recall(lat, k), recall(lat_o, k)),
            _ratio(ndcg(rank, k)[rt], ndcg(orig, k)[rt]),
        )
    )
    return out


def _target_ranks(topk: pd.Series, target: np.ndarray) -> np.ndarray:
    ranks = np.full(len(target), np.inf)
    for i, (row, t) in enumerate(zip(topk, target, strict=True)):
        hit = np.flatnonzero(np.asarray(row) == t)
        if len(hit):
            ranks[i] = hit[0]
    return ranks


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
        bad = np.flatnonzero(_target_ranks(df[lists], target) != df[ranks].to_numpy(float))
        if len(bad):
            out.append((ranks, f"{len(bad)} rows disagree with {lists} (first: row {bad[0]})"))
    fs = (df["pool"] == "forget_set").to_numpy()
    for c in ("latent_rank", "original_latent_rank", "relearn_rank"):
        if df[c][fs].isna().any():
            out.append((c, "missing on forget_set rows"))
    return out
