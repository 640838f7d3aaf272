"""SASRec reference variants, chosen on validation targets like the SID model's
(reports/backbone-tuning-cpu.md): `python reports/scripts/sasrec_variants.py VARIANT [SEED]` trains
SASRec on ml100k-horror@2.0 on one thread and prints one JSON line with its training seconds, kept
epoch and Recall@10 / NDCG@10 on validation and test targets. VARIANT: `default` or
comma-separated `field=value` overrides of `SASRecConfig`, e.g. `batch_size=32,max_epochs=150`.
`--selection`: on the task's selection view, as `backbone_variants.py --selection` (its rows'
`valid` and `test` are then that view's)."""

from __future__ import annotations

import json
import sys

import torch
from backbone_variants import variant_args, with_overrides

from benchmark.recommender.sasrec import SASRecConfig, evaluate_sasrec, train_sasrec
from tasks import get_task, prepare_task
from tasks.prepare import selection_view


def variant(name: str) -> SASRecConfig:
    return with_overrides(SASRecConfig(), [x for x in name.split(",") if x and x != "default"])


def main(name: str, seed: int, selection: bool = False) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    if selection:
        task = selection_view(task)
    model, log = train_sasrec(task, variant(name), seed)
    row = {"variant": name, "seed": seed, "train_seconds": round(log["seconds"], 1),
           "kept_epoch": log["kept_epoch"], "epochs_run": len(log["epochs"]),
           "task": task.spec.identity}  # fmt: skip
    for split in ("valid", "test"):
        m = evaluate_sasrec(model, task, split, (10,))
        row[split] = [round(m["recall@10"], 4), round(m["ndcg@10"], 4)]
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(*variant_args(sys.argv[1:]))
