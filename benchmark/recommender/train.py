"""Training and evaluation of the SID recommender: AdamW, early stopping on validation NDCG@10."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.metrics.evidence import target_ranks
from benchmark.metrics.ranking import ndcg_at_k, recall_at_k
from benchmark.recommender.data import (
    histories,
    seen_items,
    shared_windows,
    to_codes,
    training_windows,
)
from benchmark.recommender.decoding import Trie, beam_search, prefix_states
from benchmark.recommender.model import SIDRecommender
from benchmark.recommender.options import Withdrawn, config_dict
from tasks.errors import BenchError
from tasks.prepare import PreparedTask

# (field, the value every recipe had before the field existed)
ADDED_OPTIONS = (
    ("trim_padding", False),
    ("length_buckets", 0),
    ("valid_sample", 0),
    ("schedule", "cosine"),
)
SCHEDULES = ("cosine", "plateau")
# below this share of its peak lr, further epochs move validation by less than the comparison
# can resolve (reports/beauty-backbone-cpu.md): the plateau schedule stops there
PLATEAU_FLOOR = 1 / 32
# the sample of validation users draws from its own stream, so training's is the same with or
# without one
VALID_SAMPLE_STREAM = 0x5A3


@dataclass(frozen=True)
class TrainConfig:
    # one decoder layer trained longer matches two, for less time (backbone-tuning-cpu.md, 3d)
    max_epochs: int = 18
    batch_size: int = 32  # small datasets: more steps rather than more epochs
    lr: float = 1e-3  # peak, reached by a linear warm-up over the first epoch
    # after the warm-up: "cosine" decays to 0 at max_epochs (so max_epochs always binds);
    # "plateau" holds lr and halves it after every second epoch in a row that sets no new best
    # validation NDCG@10 (one such epoch may be the noise of the comparison); training stops at
    # the `patience`-th halving since the last new best, or at the halving that would take lr
    # below PLATEAU_FLOOR of its peak (max_epochs is then a cap only)
    schedule: str = "cosine"
    weight_decay: float = 0.05
    # early stopping that validation noise cannot fool: an epoch counts as worse than the best
    # only when its validation NDCG@10 is below the best's by more than `noise_z` paired standard
    # errors (over validation users); training stops after `patience` such epochs in a row, and
    # the model kept is the LATEST epoch not significantly worse than the best (the most annealed
    # one the data cannot tell apart from the best)
    patience: int = 3
    noise_z: float = 2.0
    eval_beam: int = 20
    # 0: epochs are compared on every validation user; n > 0: on a fixed sample of n of them,
    # drawn once from the seed (the decode of every user, every epoch, dominates an epoch on
    # large tasks; the paired comparison needs far fewer users than the task has)
    valid_sample: int = 0
    # cut each batch to its longest window: the same arithmetic on fewer padding positions
    # (right padding under a causal encoder), but dropout draws fewer numbers, so the random
    # stream, and with it the trained model, differs from the untrimmed recipe's
    trim_padding: bool = False
    # 0: batches are consecutive slices of a random permutation. b > 0: each run of
    # b * batch_size windows of that permutation is sorted by length and cut into batches, and
    # the epoch's batches are shuffled (a bucketing iterator): with trim_padding, a batch of short
    # histories then costs what its histories need, not what the longest window in it needs.
    # Batches then hold very different numbers of targets, so each target weighs the same: a
    # batch's loss is its summed cross-entropy over the mean number of targets in a batch
    length_buckets: int = 0
    # label smoothing of each SID level's cross-entropy, kept at 0 (reports/backbone-tuning-cpu.md,
    # 6b and 6e)
    WITHDRAWN: ClassVar[tuple[Withdrawn, ...]] = (
        Withdrawn("label_smoothing", 0.0, "label-smoothing.diff"),
    )

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise BenchError(f"field 'schedule' must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.schedule!r}")  # fmt: skip

    def to_dict(self) -> dict:
        """The fields, less options added later while they hold the value that was implicit
        before they existed, plus withdrawn options at the value every recipe held (so that
        adding or withdrawing an option moves no existing cache key or hash)."""
        return config_dict(self, ADDED_OPTIONS)


def adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has the fused kernel for the parameters' device (one kernel
    per step instead of a dozen elementwise ops per tensor; same update rule)."""
    params = list(params)
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # older torch or a device without the fused kernel
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


def significantly_below(v: np.ndarray, best: np.ndarray, z: float) -> bool:
    """Is per-user metric `v` below `best` by more than z paired standard errors?"""
    d = best - v
    se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return bool(d.mean() > z * se)


class EpochSelector:
    """Early stopping that validation noise cannot fool (see TrainConfig): feed each epoch's
    per-user validation NDCG@10 to `update`, which says whether this epoch's weights are now the
    ones to keep (the latest epoch not significantly below the best); `stop` says when to stop."""

    def __init__(self, patience: int, z: float):
        self.patience, self.z = patience, z
        self.best: np.ndarray | None = None
        self.best_epoch = self.kept_epoch = self.worse = 0

    def update(self, epoch: int, per_user: np.ndarray) -> bool:
        """Record an epoch; True when its weights should be kept."""
        if self.best is None or per_user.mean() > self.best.mean():
            self.best, self.best_epoch = per_user, epoch
        elif significantly_below(per_user, self.best, self.z):
            self.worse += 1
            return False
        self.kept_epoch, self.worse = epoch, 0
        return True

    @property
    def stop(self) -> bool:
        return self.worse >= self.patience


def epoch_batches(
    lengths: np.ndarray, batch_size: int, buckets: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch's batches of window indices (see TrainConfig.length_buckets)."""
    perm = rng.permutation(len(lengths))
    if buckets == 0:
        return [perm[s : s + batch_size] for s in range(0, len(perm), batch_size)]
    batches = []
    for s in range(0, len(perm), batch_size * buckets):
        pool = perm[s : s + batch_size * buckets]
        pool = pool[np.argsort(lengths[pool], kind="stable")]
        batches += [pool[b : b + batch_size] for b in range(0, len(pool), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def validation_sample(users: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The validation users epochs are compared on (see TrainConfig.valid_sample), sorted."""
    if size == 0 or size >= len(users):
        return users
    rng = np.random.default_rng([seed, VALID_SAMPLE_STREAM])
    return np.sort(rng.choice(users, size, replace=False))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def sequence_loss(
    model: SIDRecommender,
    codes: torch.Tensor,
    inp,
    tgt,
    mask,
    per_batch: float | None = None,
) -> torch.Tensor:
    """Mean over (target, level) of the cross-entropy of the target's SID codes; with
    `per_batch`, the sum over targets divided by that many targets instead (so that a batch of
    few targets weighs less than a batch of many)."""
    x, y = to_codes(inp, codes), to_codes(tgt, codes)
    lengths = torch.as_tensor((inp >= 0).sum(1))
    m = torch.as_tensor(mask)
    logits = model(x, lengths, y, keep=m)
    y = y[m]
    reduction = "mean" if per_batch is None else "sum"
    total = sum(F.cross_entropy(lg, y[:, lv], reduction=reduction) for lv, lg in enumerate(logits))
    return total / len(logits) / (1.0 if per_batch is None else per_batch)


@torch.no_grad()
def recommend(
    model: SIDRecommender,
    task: PreparedTask,
    codes: np.ndarray,
    sizes: tuple[int, ...],
    positions: np.ndarray,
    k: int = 20,
    beam: int = 20,
    allowed: np.ndarray | None = None,
    batch_size: int = 256,
    exclude_seen: bool = True,
) -> np.ndarray:
    """Top-k item ids (N, k) for the histories before each absolute position."""
    model.eval()
    trie = Trie(codes, sizes, allowed)
    states = prefix_states(model, trie.paths)
    codes_t = torch.tensor(codes)
    hist, lengths = histories(task, positions)
    out = np.full((len(positions), k), -1, dtype=np.int64)
    for rows, windows, window_of in shared_windows(task, positions, batch_size):
        seen = seen_items(task, positions[rows]) if exclude_seen else None
        # windows are not cut to their longest: a shorter key axis moves the attention's
        # float sums by an ulp, and with it a near-tie in a top-K list
        encoded = to_codes(hist[windows], codes_t)
        items, _ = beam_search(
            model, encoded, torch.as_tensor(lengths[rows]), trie, k, beam, seen, states,
            torch.as_tensor(window_of),
        )  # fmt: skip
        out[rows] = items.cpu().numpy()
    return out


def ranking_metrics(topk: np.ndarray, targets: np.ndarray, ks=(5, 10, 20)) -> dict[str, float]:
    ranks = target_ranks(topk, targets)
    out = {}
    for k in ks:
        out[f"recall@{k}"] = float(recall_at_k(ranks, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(ranks, k).mean())
    return out


def train_model(
    model: SIDRecommender,
    task: PreparedTask,
    codes: np.ndarray,
    sizes: tuple[int, ...],
    cfg: TrainConfig,
    seed: int,
    target_ok: np.ndarray | None = None,
    valid_users: np.ndarray | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> dict:
    """Train in place; keep the selected validation state (see TrainConfig). Returns a training
    log. `report` gets a one-line status (epoch, loss, validation NDCG@10) as training goes."""
    shown = ""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    inp, tgt, msk = training_windows(task, target_ok)
    lengths = (inp >= 0).sum(1)
    codes_t = torch.tensor(codes)
    users = np.arange(task.n_users) if valid_users is None else valid_users
    users = validation_sample(users, cfg.valid_sample, seed)
    vpos = task.valid_pos[users]
    vtargets = task.seq_items[vpos]
    opt = adamw(model.parameters(), cfg.lr, cfg.weight_decay)
    n_batches = (len(inp) + cfg.batch_size - 1) // cfg.batch_size
    per_batch = float(msk.sum()) / n_batches if cfg.length_buckets else None
    total_steps = cfg.max_epochs * n_batches
    plateau = 1.0  # the current multiple of lr under the plateau schedule (read at each step)

    def lr_factor(s: int) -> float:
        decay = (
            plateau
            if cfg.schedule == "plateau"
            else 0.5 * (1 + math.cos(math.pi * s / total_steps))
        )
        return min(1.0, (s + 1) / n_batches) * decay

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    select, kept_state = EpochSelector(cfg.patience, cfg.noise_z), None
    history: list[dict] = []
    stopped = "max_epochs"
    start = time.perf_counter()
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        batches = epoch_batches(lengths, cfg.batch_size, cfg.length_buckets, rng)
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}", disable=not progress, leave=False)
        total = 0.0
        for b in bar:
            idx = batches[b]
            width = int(lengths[idx].max()) if cfg.trim_padding else inp.shape[1]
            loss = sequence_loss(
                model, codes_t, inp[idx, :width], tgt[idx, :width], msk[idx, :width], per_batch
            )  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            value = loss.item()
            total += value
            bar.set_postfix(loss=f"{value:.3f}")
            if report is not None and (b % 8 == 0 or b == n_batches - 1):
                report(f"epoch {epoch}/{cfg.max_epochs} loss {total / (b + 1):.3f}{shown}")
        topk = recommend(model, task, codes, sizes, vpos, k=10, beam=cfg.eval_beam)
        ranks = target_ranks(topk, vtargets)
        v = ndcg_at_k(ranks, 10)
        val = {"recall@10": float(recall_at_k(ranks, 10).mean()), "ndcg@10": float(v.mean())}
        if select.update(epoch, v):
            kept_state = copy.deepcopy(model.state_dict())
        elapsed = time.perf_counter() - start
        lr = opt.param_groups[0]["lr"]
        history.append(
            {"epoch": epoch, "loss": total / n_batches, **val, "lr": lr, "seconds": elapsed}
        )
        best = history[select.best_epoch - 1]["ndcg@10"]
        shown = f" | valid ndcg@10 {val['ndcg@10']:.4f} (best {best:.4f} @{select.best_epoch})"
        if report is not None:
            report(f"epoch {epoch}/{cfg.max_epochs} loss {total / n_batches:.3f}{shown}")
        if progress:
            tqdm.write(
                f"epoch {epoch}: loss {total / n_batches:.4f}  valid recall@10 "
                f"{val['recall@10']:.4f} ndcg@10 {val['ndcg@10']:.4f}  ({elapsed:.0f} s)"
            )
        stale = epoch - select.best_epoch  # epochs in a row without a new best
        if cfg.schedule == "plateau" and stale and stale % 2 == 0:
            plateau *= 0.5
        # epoch-based only: a wall-clock rule would break determinism
        if select.stop:
            stopped = "selector"
            break
        if cfg.schedule == "plateau" and (stale >= 2 * cfg.patience or plateau < PLATEAU_FLOOR):
            stopped = "plateau"
            break
    model.load_state_dict(kept_state)
    model.eval()
    best, kept = select.best_epoch, select.kept_epoch
    return {
        "epochs": history, "best_valid_ndcg@10": history[best - 1]["ndcg@10"], "best_epoch": best,
        "kept_epoch": kept, "kept_valid_ndcg@10": history[kept - 1]["ndcg@10"],
        "stopped_by": stopped, "valid_users": len(users), "seconds": time.perf_counter() - start,
    }  # fmt: skip


def finetune(
    model: SIDRecommender,
    steps: int,
    lr: float,
    loss_fn,
    seed: int,
    progress: bool = False,
    desc: str = "unlearn",
) -> dict:
    """`steps` AdamW steps (no weight decay) of loss_fn(rng) -> (loss, parts); returns a log."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.train()
    opt = adamw([p for p in model.parameters() if p.requires_grad], lr, 0.0)
    start = time.perf_counter()
    last: dict = {}
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        loss, parts = loss_fn(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = {k: float(v) for k, v in parts.items()}
        bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()})
    model.eval()
    return {"steps": steps, "seconds": time.perf_counter() - start, "last": last}
