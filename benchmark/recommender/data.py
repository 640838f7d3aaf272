"""Tensors for the model from a prepared task: training windows and evaluation histories."""

from __future__ import annotations

import numpy as np
import torch

from tasks.prepare import PreparedTask


def training_windows(
    task: PreparedTask,
    target_ok: np.ndarray | None = None,
    max_len: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's training part cut, from its end, into windows of max_len + 1 items; every
    training target counts in the loss once per epoch, in the earliest window that holds it
    (where the most history precedes it).

    Windows overlap by one item, so a target is predicted from the items before it in its
    window only (1 to max_len of them).

    target_ok (bool per absolute position), optional: which targets count in the loss (the
    retrain oracle trains on D_r only). Returns (inputs, targets, loss_mask), each (W, max_len),
    item ids right-padded with -1.
    """
    max_len = max_len or task.spec.preprocess.max_history
    inputs, targets, masks = [], [], []
    for u in range(task.n_users):
        start, stop = int(task.seq_offsets[u]), int(task.valid_pos[u])  # the training part
        end = stop
        while end - start >= 2:
            lo = max(start, end - max_len - 1)
            window = task.seq_items[lo:end]
            ok = np.ones(len(window) - 1, bool) if target_ok is None else target_ok[lo + 1 : end]
            nxt = end - max_len  # where the next (earlier) window ends
            first = lo == start  # the user's first window: it counts all its targets
            if not first:  # targets the next window holds count there, with more history
                ok = ok & (np.arange(lo + 1, end) >= nxt)
            inputs.append(window[:-1])
            targets.append(window[1:])
            masks.append(ok)
            if first:
                break
            end = nxt
    W = len(inputs)
    inp = np.full((W, max_len), -1, dtype=np.int64)
    tgt = np.full((W, max_len), -1, dtype=np.int64)
    msk = np.zeros((W, max_len), dtype=bool)
    for w, (a, b, m) in enumerate(zip(inputs, targets, masks, strict=True)):
        inp[w, : len(a)], tgt[w, : len(b)], msk[w, : len(m)] = a, b, m
    return inp, tgt, msk


def histories(task: PreparedTask, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The history before each absolute position (at most max_history items), right-padded with
    -1: (N, max_history) item ids and (N,) lengths."""
    H = task.spec.preprocess.max_history
    users = np.searchsorted(task.seq_offsets, positions, side="right") - 1
    starts = np.maximum(task.seq_offsets[users], positions - H)
    lengths = positions - starts
    idx = starts[:, None] + np.arange(H)[None, :]
    valid = np.arange(H)[None, :] < lengths[:, None]
    out = np.where(valid, task.seq_items[np.minimum(idx, len(task.seq_items) - 1)], -1)
    return out, lengths


def shared_windows(
    task: PreparedTask, positions: np.ndarray, batch_size: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of evaluation positions that share encoder passes: positions of one user whose
    histories start at the same item (a history shorter than max_history starts at the user's
    first) are prefixes of the longest of them, and under the causal encoder their encodings
    are the first rows of its encoding. Each group is encoded once. Returns, per batch of
    about `batch_size` positions: (rows: indices into `positions`, windows: indices into
    `positions` of the histories to encode, window_of: for each row, its window's index in
    `windows`)."""
    if len(positions) == 0:
        return []
    users = np.searchsorted(task.seq_offsets, positions, side="right") - 1
    H = task.spec.preprocess.max_history
    starts = np.maximum(task.seq_offsets[users], positions - H)
    groups, group_of = np.unique(np.stack([users, starts], 1), axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    longest = np.zeros(len(groups), dtype=np.int64)
    np.maximum.at(longest, group_of, positions - starts)
    carrier = np.empty(len(groups), dtype=np.int64)  # the position of the group's longest
    is_longest = positions - starts == longest[group_of]
    carrier[group_of[is_longest]] = np.flatnonzero(is_longest)
    members = np.argsort(group_of, kind="stable")
    bounds = np.searchsorted(group_of[members], np.arange(len(groups) + 1))
    batches, rows, windows, n = [], [], [], 0
    for g in range(len(groups)):
        rows.append(members[bounds[g] : bounds[g + 1]])
        windows.append(carrier[g])
        n += len(rows[-1])
        if n >= batch_size:
            batches.append(_batch(rows, windows))
            rows, windows, n = [], [], 0
    if rows:
        batches.append(_batch(rows, windows))
    return batches


def _batch(rows: list[np.ndarray], windows: list[int]) -> tuple[np.ndarray, ...]:
    window_of = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    return np.concatenate(rows), np.asarray(windows, dtype=np.int64), window_of


def seen_items(task: PreparedTask, positions: np.ndarray) -> torch.Tensor:
    """(N, n_items) bool: items the user interacted with before each position (whole history)."""
    users = np.searchsorted(task.seq_offsets, positions, side="right") - 1
    seen = np.zeros((len(positions), task.n_items), dtype=bool)
    for r, (u, p) in enumerate(zip(users, positions, strict=True)):
        seen[r, task.seq_items[task.seq_offsets[u] : p]] = True
    return torch.as_tensor(seen)


def to_codes(items: np.ndarray, codes: torch.Tensor) -> torch.Tensor:
    """Item ids (any shape, -1 = padding) -> SID codes (..., n_levels); padding maps to code 0."""
    t = torch.as_tensor(items)
    return codes[t.clamp(min=0)] * (t >= 0).unsqueeze(-1)
