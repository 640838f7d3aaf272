"""Pieces the methods share: D_f examples and D_r windows, per-example SID log-likelihoods,
minibatch sampling, and growing a level's codebook."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.recommender.data import histories, to_codes, training_windows
from benchmark.recommender.model import SIDRecommender, sid_logprob  # noqa: F401  (re-exported)
from benchmark.recommender.sid import SemanticIds
from benchmark.recommender.train import finetune as optimise  # noqa: F401  (re-exported for methods)
from benchmark.recommender.train import sequence_loss
from tasks.prepare import PreparedTask


class RetainWindows:
    """Training sequence windows whose loss mask selects the D_r targets."""

    def __init__(self, task: PreparedTask):
        inp, tgt, msk = training_windows(task, task.retain_mask[task.seq_items])
        keep = msk.any(1)
        self.inp, self.tgt, self.msk = inp[keep], tgt[keep], msk[keep]

    def __len__(self) -> int:
        return len(self.inp)

    def sample(self, rng: np.random.Generator, size: int) -> tuple[np.ndarray, ...]:
        idx = rng.choice(len(self.inp), size=min(size, len(self.inp)), replace=False)
        return self.inp[idx], self.tgt[idx], self.msk[idx]


class Examples:
    """Single training examples (history -> target), e.g. D_f: task.d_forget indices."""

    def __init__(self, task: PreparedTask, example_idx: np.ndarray):
        self.pos = task.train_pos[example_idx]
        self.hist, self.lengths = histories(task, self.pos)
        self.targets = task.seq_items[self.pos]

    def __len__(self) -> int:
        return len(self.pos)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(len(self.pos), size=min(size, len(self.pos)), replace=False)

    def encode(self, model: SIDRecommender, codes: torch.Tensor, idx: np.ndarray):
        """(memory, mask) of the histories of examples idx, items encoded with `codes`."""
        return model.encode_histories(
            to_codes(self.hist[idx], codes), torch.as_tensor(self.lengths[idx])
        )

    def batches(self, which: np.ndarray | None = None, size: int = 512):
        """Example indices (default: all) in batches of `size`."""
        which = np.arange(len(self.pos)) if which is None else which
        for s in range(0, len(which), size):
            yield which[s : s + size]


@torch.no_grad()
def reference_logprob(
    model: SIDRecommender, codes: torch.Tensor, ex: Examples, which: np.ndarray | None = None
) -> torch.Tensor:
    """log p(SID of the target) under a frozen model for examples `which` (default: all)."""
    out = []
    for idx in ex.batches(which):
        memory, mask = ex.encode(model, codes, idx)
        y = codes[torch.as_tensor(ex.targets[idx])]
        out.append(sid_logprob(model.decode_targets(memory, mask, y), y))
    return torch.cat(out)


# example indices per reference call: a batch this wide already costs per example about what
# a large one does, and at 64 draws a step nearly every chunk of D_f is drawn within a run, so
# smaller chunks would save few examples for many more calls
CHUNK = 32


class PerExample:
    """Per-example values of a frozen model (reference log-likelihoods, TRACER's path targets),
    computed in fixed chunks of example indices: the first time a step draws an example of chunk
    c, `compute` gets the whole chunk [c * chunk, (c + 1) * chunk) (the last one shorter), once.
    Whether a chunk is computed when drawn or up front, `compute` sees the same index sets (and
    `Examples` pads every history to max_history, so the same shapes); with a frozen model in
    eval mode (no random draw) the trained model is bit for bit the one an up-front pass gives,
    on any CPU. Not guaranteed: the bits of a pass in batches of another layout (BLAS rounding
    depends on the batch's shape and the CPU; DESIGN §8)."""

    def __init__(
        self, n: int, compute: Callable[[np.ndarray], list[torch.Tensor]], chunk: int = CHUNK
    ):
        self.compute = compute  # one chunk's example indices -> one (len, ...) tensor per value
        self.n, self.chunk = n, chunk
        self.done = np.zeros(-(-n // chunk), dtype=bool)  # per chunk
        self.values: list[torch.Tensor] | None = None

    def __call__(self, idx: np.ndarray) -> list[torch.Tensor]:
        """The values of examples idx, in idx's order."""
        chunks = np.unique(np.asarray(idx) // self.chunk)
        for c in chunks[~self.done[chunks]]:
            self._fill(int(c))
        rows = torch.as_tensor(idx)
        return [v[rows] for v in self.values]

    def _fill(self, c: int) -> None:
        start, stop = c * self.chunk, min(self.n, (c + 1) * self.chunk)
        out = self.compute(np.arange(start, stop))
        if self.values is None:
            self.values = [t.new_zeros((self.n, *t.shape[1:])) for t in out]
        for v, t in zip(self.values, out, strict=True):
            v[start:stop] = t
        self.done[c] = True


def npo_loss(ratio: torch.Tensor, beta: float, total: int | None = None) -> torch.Tensor:
    """NPO's -(2/beta) log sigmoid(-beta (log p - log p_ref)) for `ratio` = log p - log p_ref:
    the batch mean, or the sum over `total` examples (where some examples have no term)."""
    terms = F.logsigmoid(-beta * ratio)
    if total is None:
        return -(2.0 / beta) * terms.mean()
    return -(2.0 / beta) * terms.sum() / total


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
        new.weight[old.num_embeddings :] = old.weight[torch.as_tensor(copy_rows)]
    model.codes[level] = new
    sizes = list(model.cfg.sizes)
    sizes[level] = new.num_embeddings
    model.cfg.sizes = tuple(sizes)


def codes_tensor(sids: SemanticIds) -> torch.Tensor:
    return torch.tensor(sids.codes)
