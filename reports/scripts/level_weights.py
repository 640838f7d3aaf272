"""Ranking by per-level weights of the SID model's log-probabilities (issue 13, round 7):
`python reports/scripts/level_weights.py VARIANT SEED` trains (or reads from the model cache) the
base model of a `backbone_variants.py` recipe on ml100k-horror@2.0's selection view, on one thread,
scores every item exhaustively for the view's validation and test targets (seen items excluded)
and prints one JSON line per weight vector of GRID: Recall@10 / NDCG@10 when items are ranked by
sum_l w_l log p(code_l | codes before it, history). w = (1, 1, 1, 1) is the model's own
likelihood (the exact ranking a wide enough beam returns); a first line gives the beam-20 metrics
the harness serves, the rows of reports/backbone-tuning-cpu.md's section 6 and 6j."""

from __future__ import annotations

import itertools
import json
import sys
import time

import torch
from backbone_variants import variant

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import ndcg_at_k, recall_at_k
from benchmark.recommender.backbone import evaluate_backbone, get_backbone
from benchmark.recommender.data import histories, seen_items, to_codes
from benchmark.recommender.decoding import Trie, level_logprobs
from tasks import get_task, prepare_task
from tasks.prepare import selection_view

# fixed before any run: w1 = 1 (only ratios matter), one weight for the two semantic levels
# below the first, one for the de-duplication level
GRID = [(1.0, a, a, b) for a, b in itertools.product((1.0, 0.9, 0.8, 0.7), (1.0, 0.75, 0.5))]


def main(recipe: str, seed: int) -> None:
    torch.set_num_threads(1)
    view = selection_view(prepare_task(get_task("ml100k-horror")))
    start = time.perf_counter()
    bb, reused = get_backbone(view, variant(recipe), seed, progress=False)
    head = {"variant": recipe, "seed": seed, "task": view.spec.identity, "reused": reused,
            "train_seconds": round(time.perf_counter() - start, 1),
            "kept_epoch": bb.log["kept_epoch"]}  # fmt: skip
    model, sids = bb.model.eval(), bb.sids
    for split in ("valid", "test"):
        m = evaluate_backbone(model, sids, view, split, 20, (10,))
        head[f"beam20_{split}"] = [round(m["recall@10"], 4), round(m["ndcg@10"], 4)]
    print(json.dumps(head), flush=True)
    trie, codes = Trie(sids.codes, sids.sizes), torch.tensor(sids.codes)
    scored = {}
    for split, pos in (("valid", view.valid_pos), ("test", view.test_pos)):
        hist, lengths = histories(view, pos)
        parts = []
        for s in range(0, len(pos), 256):
            sl = slice(s, s + 256)
            h, n = to_codes(hist[sl], codes), torch.as_tensor(lengths[sl])
            lp = level_logprobs(model, h, n, trie)
            lp[seen_items(view, pos[sl])] = float("-inf")
            parts.append(lp)
        scored[split] = (torch.cat(parts), view.seq_items[pos])
    for w in GRID:
        row = {"variant": recipe, "seed": seed, "task": view.spec.identity, "level_weights": w}
        for split, (lp, targets) in scored.items():
            # every weight of GRID is > 0, so a seen or unreachable item's -inf stays -inf
            score = (lp * torch.tensor(w)).sum(-1)
            ranks = target_ranks(score.topk(10, dim=1).indices.numpy(), targets)
            row[split] = [round(float(recall_at_k(ranks, 10).mean()), 4),
                          round(float(ndcg_at_k(ranks, 10).mean()), 4)]  # fmt: skip
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
