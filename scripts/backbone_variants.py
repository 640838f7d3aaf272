"""Backbone variants for issue 13, chosen on validation targets (test rows computed for the
report only): `python scripts/backbone_variants.py VARIANT [SEED]` trains one variant of the base
model of ml100k-horror@2.0 on one thread (not cached) and prints one JSON line with its training
seconds, kept epoch and Recall@10 / NDCG@10 on validation and test targets at beam 20 and 50."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from benchmark.backbone import BackboneConfig, evaluate_backbone, train_backbone
from tasks import get_task, prepare_task

BASE = BackboneConfig()
VARIANTS = {
    "default": BASE,
    "epochs20": replace(BASE, train=replace(BASE.train, max_epochs=20)),
    "epochs30": replace(BASE, train=replace(BASE.train, max_epochs=30)),
    "dropout0.0": replace(BASE, arch=replace(BASE.arch, dropout=0.0)),
    "dropout0.2": replace(BASE, arch=replace(BASE.arch, dropout=0.2)),
    "epochs20-dropout0.0": replace(
        BASE, train=replace(BASE.train, max_epochs=20), arch=replace(BASE.arch, dropout=0.0)
    ),
}


def main(name: str, seed: int) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    start = time.perf_counter()
    model, sids, log = train_backbone(task, VARIANTS[name], seed, progress=False)
    row = {"variant": name, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1),
           "kept_epoch": log["kept_epoch"]}  # fmt: skip
    for split in ("valid", "test"):
        for beam in (20, 50):
            m = evaluate_backbone(model, sids, task, split, beam, (10,))
            row[f"{split}_b{beam}"] = [round(m["recall@10"], 4), round(m["ndcg@10"], 4)]
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
