"""Retained NDCG@10 of a results folder's cells relative to the original model, from the evidence
(retain-test targets): `python reports/scripts/utility_ratios.py RESULTS [METHOD ...] [--by-task]`.

Prints, per (task, seed), each method's ratio to the plain original, the oracle's (its
`oracle_rank` column) and the banned original's (`banned_rank`: the original served with the
forget items banned, the protocol 2.1 reference) — the convergence check of the base model, and
the slot effect: what a ban alone gives the original. `--by-task`: means over seeds per (task,
method), with the utility part under protocol 2.0 (`min(1, method / original)`) beside protocol
2.1's (`min(1, method / banned original)`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from benchmark.metrics.evidence import evidence_path
from benchmark.metrics.ranking import ndcg_at_k


def ndcg(ranks: pd.Series) -> float:
    return float(ndcg_at_k(ranks.to_numpy(dtype=float), 10).mean())


def cells(root: str, methods: list[str]) -> pd.DataFrame:
    rows = []
    for f in sorted(Path(root).rglob("seed*.json")):
        if f.name.endswith(".failed.json") or (methods and f.parent.name not in methods):
            continue
        df = pd.read_parquet(evidence_path(f))
        r = df[df["pool"] == "retain_test"]
        orig, ban = ndcg(r["original_rank"]), ndcg(r["banned_rank"])
        m = ndcg(r["rank"])
        rows.append((f.parent.parent.name, f.stem, f.parent.name, m / orig,
                     ndcg(r["oracle_rank"]) / orig, ban / orig, m / ban, orig))  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "seed", "method", "method/original",
                                       "oracle/original", "ban/original", "method/ban",
                                       "original NDCG@10"])  # fmt: skip


def by_task(table: pd.DataFrame) -> pd.DataFrame:
    table = table.assign(**{
        "utility 2.0": table["method/original"].clip(upper=1.0),
        "utility 2.1": table["method/ban"].clip(upper=1.0),
    })  # fmt: skip
    cols = ["oracle/original", "ban/original", "method/original", "utility 2.0", "utility 2.1"]
    out = table.groupby(["task", "method"])[cols].mean()
    out.insert(0, "seeds", table.groupby(["task", "method"]).size())
    return out.reset_index()


def main(args: list[str]) -> None:
    summary = "--by-task" in args
    args = [a for a in args if a != "--by-task"]
    table = cells(args[0], args[1:])
    if summary:
        table = by_task(table)
    print(table.to_markdown(index=False, floatfmt=".3f") if summary else
          table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
