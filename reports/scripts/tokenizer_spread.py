"""How much a base model's quality depends on its tokenizer's k-means draw (issues 11 and 13):
`python reports/scripts/tokenizer_spread.py KIND SEED SID_SEED` trains (or reads from the model
cache) the base model (KIND `original`) or the retrain oracle (KIND `oracle`) of ml100k-horror@2.0
with the default recipe, model seed SEED and `sid.seed=SID_SEED`, on one thread, and prints one
JSON line: Recall@10 / NDCG@10 on validation and test targets and NDCG@10 on the retain-test
targets (test targets outside the forgotten concept, the denominator of the retained-utility
ratio), all at beam 20, seen items excluded. The default recipe draws tokenizer seed = model seed
(since harness 0.4.0; 0 for every seed before): SID_SEED = SEED trains the same model under another
cache key. `--variant V` starts from a recipe of `backbone_variants.py` instead of the default
(e.g. `default,train.label_smoothing=0.1`, with reports/patches/label-smoothing.diff applied): how
a recipe moves the oracle ratio. SID_SEED `run` keeps the recipe's own rule (the run's seed) and so
its cache key."""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import torch
from backbone_variants import variant

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import ndcg_at_k, recall_at_k
from benchmark.recommender.backbone import get_backbone
from benchmark.recommender.oracle import train_oracle
from benchmark.recommender.train import recommend
from tasks import get_task, prepare_task


def main(kind: str, seed: int, sid_seed: int | None, recipe: str = "default") -> None:
    if kind not in ("original", "oracle"):
        raise SystemExit(f"KIND must be original or oracle, not {kind!r}")
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    cfg = variant(recipe)
    if sid_seed is not None:  # None: the recipe's own rule (and its cache key)
        cfg = replace(cfg, sid=replace(cfg.sid, seed=sid_seed))
    if kind == "oracle":
        built = train_oracle(task, cfg, seed)
    else:
        built = get_backbone(task, cfg, seed, progress=False)[0]
    model, sids = built.model, built.sids
    row = {"kind": kind, "seed": seed, "sid_seed": sid_seed, "kept_epoch": built.log["kept_epoch"]}
    if recipe != "default":
        row["variant"] = recipe
    retain = ~task.forget_mask[task.seq_items[task.test_pos]]
    for split, pos in (("valid", task.valid_pos), ("test", task.test_pos)):
        topk = recommend(model, task, sids.codes, sids.sizes, pos, k=10, beam=20)
        ranks = target_ranks(topk, task.seq_items[pos])
        row[split] = [round(float(recall_at_k(ranks, 10).mean()), 4),
                      round(float(ndcg_at_k(ranks, 10).mean()), 4)]  # fmt: skip
        if split == "test":
            row["retain_test_ndcg@10"] = round(float(ndcg_at_k(ranks[retain], 10).mean()), 5)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    recipe = "default"
    if "--variant" in args:
        i = args.index("--variant")
        recipe = args[i + 1]
        del args[i : i + 2]
    main(args[0], int(args[1]), None if args[2] == "run" else int(args[2]), recipe)
