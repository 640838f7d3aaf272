"""SASRec (Kang & McAuley, 2018) as the reference recommender a user would pick instead of the
generative one: causal self-attention over item-id embeddings, a full softmax over the catalogue.
Trained on the same training windows, early-stopped by the same noise-aware rule on the same
validation targets, and evaluated on the same test targets with the same seen-item rule and the
same metric functions as the SID model. A yardstick, not an unlearning target."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import ndcg_at_k
from benchmark.recommender.data import histories, seen_items, training_windows
from benchmark.recommender.train import EpochSelector, adamw, ranking_metrics, seed_everything
from tasks.prepare import PreparedTask


@dataclass(frozen=True)
class SASRecConfig:
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    dropout: float = 0.2
    max_epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.0
    patience: int = 5
    noise_z: float = 2.0


class SASRec(nn.Module):
    def __init__(self, n_items: int, max_len: int, cfg: SASRecConfig):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.d_model, padding_idx=0)  # 0: padding
        self.pos = nn.Embedding(max_len, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.n_heads, cfg.d_model, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        for emb in (self.items, self.pos):  # small: the item table is also the output layer
            nn.init.normal_(emb.weight, std=0.02)

    def hidden(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, T) right-padded ids (-1 = padding) -> (B, T, d) causal states."""
        T = items.shape[1]
        x = self.items(items + 1) + self.pos.weight[:T]
        causal = torch.ones(T, T, dtype=torch.bool, device=items.device).triu(1)
        return self.norm(self.encoder(self.drop(x), mask=causal, is_causal=True))

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """States (..., d) -> next-item logits (..., n_items): the item table is the output."""
        return h @ self.items.weight[1:].T


@torch.no_grad()
def sasrec_topk(
    model: SASRec, task: PreparedTask, positions: np.ndarray, k: int, batch_size: int = 512
) -> np.ndarray:
    """Top-k item ids (N, k) for the histories before each position, seen items excluded (-1
    where fewer than k items are left, as the SID model's decoder reports them)."""
    model.eval()
    hist, lengths = histories(task, positions)
    out = np.empty((len(positions), k), dtype=np.int64)
    for s in range(0, len(positions), batch_size):
        sl = slice(s, s + batch_size)
        h = model.hidden(torch.as_tensor(hist[sl]))
        # only each history's last state is scored (not every position's)
        last = model.logits(h[torch.arange(len(lengths[sl])), torch.as_tensor(lengths[sl]) - 1])
        last[seen_items(task, positions[sl])] = float("-inf")
        scores, ids = last.topk(k, dim=1)
        out[sl] = torch.where(torch.isfinite(scores), ids, -1).numpy()
    return out


def train_sasrec(task: PreparedTask, cfg: SASRecConfig, seed: int) -> tuple[SASRec, dict]:
    """Train on the task's training windows; keep the epoch EpochSelector picks."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    inp, tgt, msk = training_windows(task)
    model = SASRec(task.n_items, task.spec.preprocess.max_history, cfg)
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    vpos = task.valid_pos
    select, kept, history = EpochSelector(cfg.patience, cfg.noise_z), None, []
    start = time.perf_counter()
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        perm = rng.permutation(len(inp))
        for b in range(0, len(perm), cfg.batch_size):
            idx = perm[b : b + cfg.batch_size]
            m = torch.as_tensor(msk[idx])
            h = model.hidden(torch.as_tensor(inp[idx]))
            loss = F.cross_entropy(model.logits(h[m]), torch.as_tensor(tgt[idx])[m])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        per_user = ndcg_at_k(target_ranks(sasrec_topk(model, task, vpos, 10),
                                          task.seq_items[vpos]), 10)  # fmt: skip
        history.append({"epoch": epoch, "ndcg@10": float(per_user.mean())})
        if select.update(epoch, per_user):
            kept = copy.deepcopy(model.state_dict())
        if select.stop:
            break
    model.load_state_dict(kept)
    model.eval()
    log = {"epochs": history, "kept_epoch": select.kept_epoch,
           "seconds": time.perf_counter() - start}  # fmt: skip
    return model, log


def evaluate_sasrec(
    model: SASRec, task: PreparedTask, split: str = "test", ks: tuple[int, ...] = (5, 10, 20)
) -> dict:
    pos = task.test_pos if split == "test" else task.valid_pos
    return ranking_metrics(sasrec_topk(model, task, pos, max(ks)), task.seq_items[pos], ks)
