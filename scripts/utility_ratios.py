"""Retained NDCG@10 of a results folder's cells relative to the original model, from the evidence
(retain-test targets): `python scripts/utility_ratios.py RESULTS [METHOD ...]`. Prints, per
(task, seed), each method's ratio and the oracle's (its `oracle_rank` column) — the convergence
check of the base model (a converged base leaves little for more training on D_r to add)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from benchmark.metrics.evidence import evidence_path
from benchmark.metrics.registry import ndcg_at_k


def ndcg(ranks: pd.Series) -> float:
    return float(ndcg_at_k(ranks.to_numpy(dtype=float), 10).mean())


def main(root: str, methods: list[str]) -> None:
    rows = []
    for f in sorted(Path(root).rglob("seed*.json")):
        if f.name.endswith(".failed.json") or (methods and f.parent.name not in methods):
            continue
        df = pd.read_parquet(evidence_path(f))
        r = df[df["pool"] == "retain_test"]
        orig = ndcg(r["original_rank"])
        rows.append((f.parent.parent.name, f.stem, f.parent.name, ndcg(r["rank"]) / orig,
                     ndcg(r["oracle_rank"]) / orig, orig))  # fmt: skip
    table = pd.DataFrame(rows, columns=["task", "seed", "method", "method/original",
                                        "oracle/original", "original NDCG@10"])  # fmt: skip
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
