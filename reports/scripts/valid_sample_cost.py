"""What a sample of validation users saves and what it resolves: the validation decode (beam
20, top 10) of every validation user against a seeded sample of n, per model, on one thread; and
the paired standard error of a per-user NDCG@10 difference at each size, between the first two
models (e.g. two seeds' oracles: further apart than two epochs of one run, so the error is an
upper bound).

Usage: python reports/scripts/valid_sample_cost.py TASK N CHECKPOINT CHECKPOINT [CHECKPOINT ...]
(CHECKPOINT: a checkpoint folder, e.g. a board's `checkpoints/<sha256>`)
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import ndcg_at_k
from benchmark.recommender.backbone import load_backbone
from benchmark.recommender.train import recommend, validation_sample
from tasks import get_task, prepare_task


def main(task_name: str, n: int, checkpoints: list[str]) -> None:
    torch.set_num_threads(1)
    task = prepare_task(get_task(task_name))
    sample = task.valid_pos[validation_sample(np.arange(task.n_users), n, 0)]
    per_user = []
    for folder in map(Path, checkpoints):
        b = load_backbone(folder)
        for users in (sample, task.valid_pos):
            start = time.perf_counter()
            topk = recommend(b.model, task, b.sids.codes, b.sids.sizes, users, k=10, beam=20)
            print(f"{folder.name[:12]}: {len(users)} users decoded in "
                  f"{time.perf_counter() - start:.1f} s")  # fmt: skip
        per_user.append(ndcg_at_k(target_ranks(topk, task.seq_items[task.valid_pos]), 10))
    d = per_user[0] - per_user[1]
    mean = per_user[0].mean()
    print(f"NDCG@10 {mean:.4f}, sd of the paired difference {d.std(ddof=1):.4f}")
    for size in (2000, n, 10000, len(d)):
        resolution = 2 * d.std(ddof=1) / math.sqrt(size)
        share = resolution / mean
        print(f"n={size}: 2 standard errors = {resolution:.4f} ({share:.1%} of NDCG@10)")


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
