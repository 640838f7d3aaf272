"""Backbone variants for issue 13, chosen on validation targets (test rows computed for the
report only): `python scripts/backbone_variants.py VARIANT [SEED]` trains one variant of the base
model of ml100k-horror@2.0 on one thread (not cached; VARIANT a name below or overrides such as
`features.collab_weight=2.0,sid.levels=2`) and prints one JSON line with its training
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


def variant(name: str) -> BackboneConfig:
    """A named variant, or overrides of the default such as
    `features.collab_weight=2.0,train.max_epochs=20` (section.field=value, comma-separated)."""
    if name in VARIANTS:
        return VARIANTS[name]
    cfg = BASE
    for item in name.split(","):
        key, _, value = item.partition("=")
        section, _, fld = key.partition(".")
        part = getattr(cfg, section)
        kind = type(getattr(part, fld))
        cfg = replace(cfg, **{section: replace(part, **{fld: kind(value)})})
    return cfg


def main(name: str, seed: int) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    start = time.perf_counter()
    model, sids, log = train_backbone(task, variant(name), seed, progress=False)
    row = {"variant": name, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1),
           "kept_epoch": log["kept_epoch"]}  # fmt: skip
    for split in ("valid", "test"):
        for beam in (20, 50):
            m = evaluate_backbone(model, sids, task, split, beam, (10,))
            row[f"{split}_b{beam}"] = [round(m["recall@10"], 4), round(m["ndcg@10"], 4)]
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
