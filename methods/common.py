"""Pieces the methods share: training windows of D_f / D_r, per-target SID log-likelihoods,
minibatch sampling, and growing a level's codebook."""

from __future__ import annotations

import copy

import numpy as np
import torch

from benchmark.data import to_codes, training_windows
from benchmark.model import SIDRecommender
from benchmark.sid import SemanticIds
from benchmark.train import finetune as optimise  # noqa: F401  (re-exported for methods)
from benchmark.train import sequence_loss
from tasks.prepare import PreparedTask


class Windows:
    """Training windows whose loss mask selects D_f targets (forget=True) or D_r targets."""

    def __init__(self, task: PreparedTask, forget: bool):
        target_ok = (
            task.forget_mask[task.seq_items] if forget else ~task.forget_mask[task.seq_items]
        )
        inp, tgt, msk = training_windows(task, target_ok)
        keep = msk.any(1)
        self.inp, self.tgt, self.msk = inp[keep], tgt[keep], msk[keep]

    def __len__(self) -> int:
        return len(self.inp)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
        idx = rng.choice(len(self.inp), size=min(size, len(self.inp)), replace=False)
        return self.inp[idx], self.tgt[idx], self.msk[idx]


def window_logits(
    model: SIDRecommender, codes: torch.Tensor, inp: np.ndarray, tgt: np.ndarray
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Per-level logits (B, T, V_l) of every target in the windows, and the target codes."""
    x, y = to_codes(inp, codes), to_codes(tgt, codes)
    lengths = torch.from_numpy((inp >= 0).sum(1))
    return model(x, lengths, y), y


def target_logprob(logits: list[torch.Tensor], y: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """log p(SID of the target | history) for the masked targets: (N,)."""
    m = torch.from_numpy(mask)
    return sum(
        torch.log_softmax(lg[m], -1).gather(1, y[..., lv][m][:, None])[:, 0]
        for lv, lg in enumerate(logits)
    )


def retain_loss(model: SIDRecommender, codes: torch.Tensor, batch: tuple[np.ndarray, ...]):
    return sequence_loss(model, codes, *batch)


def frozen_copy(model: SIDRecommender) -> SIDRecommender:
    ref = copy.deepcopy(model)
    ref.eval()
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def grow_level(model: SIDRecommender, level: int, copy_rows: np.ndarray) -> None:
    """Append one code per entry of `copy_rows` to `level`, initialised from those rows."""
    old = model.codes[level]
    new = torch.nn.Embedding(old.num_embeddings + len(copy_rows), old.embedding_dim)
    with torch.no_grad():
        new.weight[: old.num_embeddings] = old.weight
        new.weight[old.num_embeddings :] = old.weight[torch.from_numpy(copy_rows)]
    model.codes[level] = new
    sizes = list(model.cfg.sizes)
    sizes[level] = new.num_embeddings
    model.cfg.sizes = tuple(sizes)


def codes_tensor(sids: SemanticIds) -> torch.Tensor:
    return torch.tensor(sids.codes)
