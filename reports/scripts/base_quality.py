"""Test Recall@10 / NDCG@10 of the base model (the original model every cell starts from) per
(task, seed), from a results folder's evidence: its `original_rank` on every test target
(`python reports/scripts/base_quality.py RESULTS`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from benchmark.metrics.evidence import evidence_path
from benchmark.metrics.ranking import ndcg_at_k, recall_at_k


def main(root: str) -> None:
    seen, rows = set(), []
    for f in sorted(Path(root).rglob("seed*.json")):
        key = (f.parent.parent.name, f.stem)
        if f.name.endswith(".failed.json") or key in seen:
            continue
        seen.add(key)
        df = pd.read_parquet(evidence_path(f), columns=["pool", "original_rank"])
        r = df.loc[df["pool"].isin(["retain_test", "forget_test"]), "original_rank"].to_numpy()
        rows.append((*key, len(r), recall_at_k(r, 10).mean(), ndcg_at_k(r, 10).mean()))
    table = pd.DataFrame(rows, columns=["task", "seed", "test targets", "Recall@10", "NDCG@10"])
    fmt = lambda x: f"{x:.4f}"  # noqa: E731
    print(table.to_string(index=False, float_format=fmt))
    print(table.groupby("task")[["Recall@10", "NDCG@10"]].mean().to_string(float_format=fmt))


if __name__ == "__main__":
    main(sys.argv[1])
