"""The SASRec reference: it learns a predictable sequence, never recommends a seen item, and is
deterministic for a seed."""

from __future__ import annotations

import numpy as np
from conftest import toy_rows, toy_task_file, write_atomic

from benchmark.recommender.data import seen_items
from benchmark.recommender.sasrec import SASRecConfig, evaluate_sasrec, sasrec_topk, train_sasrec
from tasks import load_task_file, prepare_task

SMALL = SASRecConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0, max_epochs=40,
                     batch_size=8, lr=1e-2, patience=40)  # fmt: skip


def _cycle_task(tmp_path):
    """Every user walks the same cycle 1 -> 2 -> ... -> 12: the next item is predictable."""
    inter = [f"{u}\t{(u + k) % 12 + 1}\t4\t{100 + k}" for u in range(1, 41) for k in range(12)]
    _, items = toy_rows(n_items=12)
    data = write_atomic(tmp_path / "cyc", inter, items)
    return prepare_task(load_task_file(toy_task_file(tmp_path, data)))


def test_sasrec_learns_the_cycle_and_excludes_seen_items(tmp_path):
    task = _cycle_task(tmp_path)
    model, log = train_sasrec(task, SMALL, seed=0)
    top = sasrec_topk(model, task, task.test_pos, k=3)
    assert (top[:, 0] == task.test_items).mean() > 0.9
    seen = seen_items(task, task.test_pos).numpy()
    served = top >= 0
    assert not seen[np.nonzero(served)[0], top[served]].any()
    assert (~served).any()  # the cycle's last targets leave fewer than 3 unseen items
    assert evaluate_sasrec(model, task, ks=(1, 10))["recall@1"] > 0.9
    again, log2 = train_sasrec(task, SMALL, seed=0)
    assert log2["epochs"] == log["epochs"]
    assert (sasrec_topk(again, task, task.test_pos, 3) == top).all()
