"""Where the SID model trails SASRec (issue 13): `python reports/scripts/gap_by_position.py [SEED]`
takes the cached base model of ml100k-horror@2.0 for SEED (run `tracer-bench train` first), trains
SASRec, and prints Recall@10 of both (1) on each of the 5 test positions (1 = the interaction
right after the validation target), beside the median number of training interactions of the
targets there, and (2) on validation and test targets grouped by that number (the target item's
popularity in training)."""

from __future__ import annotations

import sys

import numpy as np
import torch

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import recall_at_k
from benchmark.recommender.backbone import BackboneConfig, backbone_dir, load_backbone
from benchmark.recommender.features import train_interactions
from benchmark.recommender.sasrec import SASRecConfig, sasrec_topk, train_sasrec
from benchmark.recommender.train import recommend
from tasks import get_task, prepare_task

POPULARITY_EDGES = (0, 5, 20, 50, 100, 200, 10**9)


def main(seed: int) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    bb = load_backbone(backbone_dir(task, BackboneConfig(), seed))
    sasrec, _ = train_sasrec(task, SASRecConfig(), seed)
    counts = np.bincount(train_interactions(task)[1], minlength=task.n_items)

    def hits(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        targets = task.seq_items[pos]
        topk = recommend(bb.model, task, bb.sids.codes, bb.sids.sizes, pos, k=10, beam=20)
        sid = recall_at_k(target_ranks(topk, targets), 10)
        sas = recall_at_k(target_ranks(sasrec_topk(sasrec, task, pos, 10), targets), 10)
        return targets, sid, sas

    pos = task.test_pos
    users = np.searchsorted(task.seq_offsets, pos, side="right") - 1
    where = pos - task.valid_pos[users]
    test = targets, sid, sas = hits(pos)
    print("test position | targets | median training count | SID R@10 | SASRec R@10 | ratio")
    for k in np.unique(where):
        s = where == k
        a, b = sid[s].mean(), sas[s].mean()
        print(f"{k} | {s.sum()} | {np.median(counts[targets[s]]):.0f} | {a:.4f} | {b:.4f} | "
              f"{a / b:.3f}")  # fmt: skip
    print("\nsplit | training count of the target | targets | SID R@10 | SASRec R@10 | ratio")
    for split, (targets, sid, sas) in (("valid", hits(task.valid_pos)), ("test", test)):
        for lo, hi in zip(POPULARITY_EDGES[:-1], POPULARITY_EDGES[1:], strict=True):
            s = (counts[targets] >= lo) & (counts[targets] < hi)
            a, b = sid[s].mean(), sas[s].mean()
            ratio = f"{a / b:.3f}" if b > 0 else "-"
            span = f"[{lo}, {hi})" if hi < 10**9 else f">= {lo}"
            print(f"{split} | {span} | {s.sum()} | {a:.4f} | {b:.4f} | {ratio}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
