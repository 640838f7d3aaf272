"""Milliseconds per training step of the default base model on ml100k-horror@2.0 (batch 64,
forward + backward + clipping + AdamW), median of 10 after 2 warm-up steps:
`python reports/scripts/step_time.py THREADS` (reports/profile-cpu.md: threads; glibc's
MALLOC_TRIM_THRESHOLD_ set by a Dask nanny: run it with and without that variable)."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from benchmark.recommender.backbone import BackboneConfig
from benchmark.recommender.data import training_windows
from benchmark.recommender.features import item_features
from benchmark.recommender.model import SIDRecommender
from benchmark.recommender.sid import fit_semantic_ids
from benchmark.recommender.train import adamw, sequence_loss
from tasks import get_task, prepare_task


def main(threads: int) -> None:
    torch.set_num_threads(threads)
    task = prepare_task(get_task("ml100k-horror"))
    cfg = BackboneConfig()
    sids = fit_semantic_ids(item_features(task, cfg.features), cfg.sid)
    inp, tgt, msk = training_windows(task)
    codes = torch.tensor(sids.codes)
    torch.manual_seed(0)
    model = SIDRecommender(cfg.model_config(sids.sizes, task.spec.preprocess.max_history))
    model.train()
    opt = adamw(model.parameters(), cfg.train.lr, cfg.train.weight_decay)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(12):
        idx = rng.choice(len(inp), cfg.train.batch_size, replace=False)
        start = time.perf_counter()
        loss = sequence_loss(model, codes, inp[idx], tgt[idx], msk[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - start)
    print(f"{threads} thread(s): {np.median(times[2:]) * 1000:.0f} ms per training step")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
