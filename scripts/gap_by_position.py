"""Where the SID model trails SASRec (issue 13): `python scripts/gap_by_position.py [SEED]` takes
the cached base model of ml100k-horror@2.0 for SEED (run `tracer-bench train` first), trains
SASRec, and prints Recall@10 of both on each of the 5 test positions (1 = the interaction right
after the validation target), beside the median number of training interactions of the targets
there."""

from __future__ import annotations

import sys

import numpy as np
import torch

from benchmark.backbone import BackboneConfig, backbone_dir, load_backbone
from benchmark.evidence import target_ranks
from benchmark.features import train_interactions
from benchmark.metrics import recall_at_k
from benchmark.sasrec import SASRecConfig, sasrec_topk, train_sasrec
from benchmark.train import recommend
from tasks import get_task, prepare_task


def main(seed: int) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task("ml100k-horror"))
    bb = load_backbone(backbone_dir(task, BackboneConfig(), seed))
    sasrec, _ = train_sasrec(task, SASRecConfig(), seed)
    pos = task.test_pos
    users = np.searchsorted(task.seq_offsets, pos, side="right") - 1
    where = pos - task.valid_pos[users]
    targets = task.seq_items[pos]
    counts = np.bincount(train_interactions(task)[1], minlength=task.n_items)
    sid = recall_at_k(target_ranks(recommend(bb.model, task, bb.sids.codes, bb.sids.sizes, pos,
                                             k=10, beam=20), targets), 10)  # fmt: skip
    sas = recall_at_k(target_ranks(sasrec_topk(sasrec, task, pos, 10), targets), 10)
    print("test position | targets | median training count | SID R@10 | SASRec R@10 | ratio")
    for k in np.unique(where):
        s = where == k
        a, b = sid[s].mean(), sas[s].mean()
        print(f"{k} | {s.sum()} | {np.median(counts[targets[s]]):.0f} | {a:.4f} | {b:.4f} | "
              f"{a / b:.3f}")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
