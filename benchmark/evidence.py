"""A result's evidence (DESIGN §6): the per-example top-K lists and target ranks of every pool, in
a small parquet file beside the result JSON, from which every ranking metric can be recomputed.

One row per evaluation example. Columns: pool ("retain_test", "forget_test", "forget_set"),
collateral (bool), position, target, topk / rank (served by the unlearned model; rank 0-based,
inf when absent), original_topk / original_rank, topk_in_forget (per slot), and for forget-set
rows latent_rank, original_latent_rank and relearn_rank (NaN elsewhere)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.atomic import write_bytes_atomic
from benchmark.unlearning_metrics import forget_slots


def evidence_path(result_json: Path) -> Path:
    return result_json.with_name(result_json.name.removesuffix(".json") + ".evidence.parquet")


def _rows(pool, collateral, positions, targets, topk, rank, otopk, orank, fmask, latent=None):
    n = len(positions)
    nan = np.full(n, np.nan)
    lat, olat, relearn = latent if latent is not None else (nan, nan, nan)
    return pd.DataFrame(
        {
            "pool": pool,
            "collateral": collateral,
            "position": positions.astype(np.int64),
            "target": targets.astype(np.int64),
            "topk": list(topk.astype(np.int64)),
            "rank": rank.astype(float),
            "original_topk": list(otopk.astype(np.int64)),
            "original_rank": orank.astype(float),
            "topk_in_forget": list(forget_slots(topk, fmask)),
            "latent_rank": np.asarray(lat, dtype=float),
            "original_latent_rank": np.asarray(olat, dtype=float),
            "relearn_rank": np.asarray(relearn, dtype=float),
        }
    )


def evidence_frame(ev: dict) -> pd.DataFrame:
    """The evidence rows from the dict `evaluate_unlearning(..., evidence=ev)` filled."""
    p, fmask = ev["pools"], ev["forget_mask"]
    n_users, n_fs = len(p.user_pos), len(p.forget_set_pos)
    pool = np.full(n_users, "retain_test", dtype=object)
    pool[p.forget_users] = "forget_test"
    collateral = np.zeros(n_users, dtype=bool)
    collateral[p.collateral_users] = True
    users = _rows(
        pool,
        collateral,
        p.user_pos,
        ev["test_items"],
        ev["test_topk"],
        ev["test_rank"],
        ev["original_test_topk"],
        ev["original_test_rank"],
        fmask,
    )
    forget_set = _rows(
        np.full(n_fs, "forget_set", dtype=object),
        np.zeros(n_fs, dtype=bool),
        p.forget_set_pos,
        ev["forget_set_items"],
        ev["forget_set_topk"],
        ev["forget_set_rank"],
        ev["original_forget_set_topk"],
        ev["original_forget_set_rank"],
        fmask,
        (ev["latent_rank"], ev["original_latent_rank"], ev["relearn_rank"]),
    )
    return pd.concat([users, forget_set], ignore_index=True)


def write_evidence_atomic(path: Path, frame: pd.DataFrame) -> None:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    write_bytes_atomic(path, buf.getvalue())
