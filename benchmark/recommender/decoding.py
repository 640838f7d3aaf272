"""Constrained decoding over valid SIDs: a tensorised prefix trie, batched beam search, and
exhaustive teacher-forced scoring of every item (an exact full ranking).

Both score an item by the sum of its tokens' log-probabilities (each level normalised over that
level's whole codebook), so a wide enough beam returns exactly the exhaustive top-K.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmark.recommender.model import SIDRecommender


class Trie:
    """Valid SIDs as per-level tables: child[l][prefix_id, code] = next prefix id, or -1.

    Prefix ids at level 0 are just {0} (the root); the last level's "prefix id" is the item id.
    Built from the items in `allowed` only, so banned items (and prefixes leading only to
    banned items) are unreachable.
    """

    def __init__(
        self, codes: np.ndarray, sizes: tuple[int, ...], allowed: np.ndarray | None = None
    ):
        n_items, n_levels = codes.shape
        items = np.arange(n_items) if allowed is None else np.flatnonzero(allowed)
        parent = np.zeros(len(items), dtype=np.int64)  # prefix id of each allowed item, per level
        self.child: list[torch.Tensor] = []
        self.n_prefixes = [1]
        self.items = torch.as_tensor(items)
        # below[l][j]: the prefix (after level l) of the j-th allowed item, for l < last level
        self.below: list[torch.Tensor] = []
        # paths[l]: (n_prefixes[l], l) the codes of every prefix of l levels (the root's: none)
        paths = [np.zeros((1, 0), dtype=np.int64)]
        for lv in range(n_levels):
            if lv == n_levels - 1:
                nxt = items
                n_next = n_items
            else:
                keys = parent * sizes[lv] + codes[items, lv]
                uniq, nxt = np.unique(keys, return_inverse=True)
                n_next = len(uniq)
                paths.append(np.concatenate([paths[-1][uniq // sizes[lv]],
                                             (uniq % sizes[lv])[:, None]], axis=1))  # fmt: skip
            table = np.full((self.n_prefixes[-1], sizes[lv]), -1, dtype=np.int64)
            table[parent, codes[items, lv]] = nxt
            self.child.append(torch.as_tensor(table))
            self.n_prefixes.append(n_next)
            if lv < n_levels - 1:
                self.below.append(torch.as_tensor(nxt))
            parent = nxt
        self.paths = [torch.as_tensor(p) for p in paths]

    def open_prefixes(self, seen: torch.Tensor) -> list[torch.Tensor]:
        """Per level, (B, n_prefixes after that level) bool: whether the prefix leads to an item
        the user has not seen (at the last level the prefix is the item). A beam hypothesis on a
        closed prefix can only end in excluded items."""
        unseen = ~seen
        per_item = unseen[:, self.items].float()
        out = [
            torch.zeros(len(seen), n).index_add_(1, below, per_item) > 0
            for below, n in zip(self.below, self.n_prefixes[1:-1], strict=True)
        ]
        return [*out, unseen]


def _next_hypotheses(
    logp: torch.Tensor, prefix: torch.Tensor, score: torch.Tensor, child: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total score and child prefix of every (hypothesis, code) pair; invalid pairs get -inf."""
    nxt = child[prefix.clamp(min=0)]  # (B, P, V); dead hypotheses (-1) already score -inf
    total = score[..., None] + logp
    return total.masked_fill(nxt < 0, float("-inf")), nxt


@torch.no_grad()
def beam_search(
    model: SIDRecommender,
    hist: torch.Tensor,
    lengths: torch.Tensor,
    trie: Trie,
    k: int,
    beam: int,
    seen: torch.Tensor | None = None,
    states: list | None = None,
    window_of: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per user by constrained beam search. Returns (items (B, k), scores (B, k));
    item -1 with score -inf where fewer than k valid items were reachable.

    seen (B, n_items) bool, optional: items excluded per user (their history). states: the trie's
    prefixes as `model.prefix_states(trie.paths)` gives them (computed here when absent: pass them
    to decode several batches with one model and one trie). window_of (B,): user b's history is
    the first lengths[b] items of hist[window_of[b]] (`SIDRecommender.start`).
    """
    assert beam >= k
    B = lengths.shape[0]
    states = model.prefix_states(trie.paths) if states is None else states
    state = model.start(hist, lengths, states, window_of)
    prefix = torch.zeros(B, 1, dtype=torch.long)
    score = torch.zeros(B, 1)
    tokens = None
    n_levels = len(trie.child)
    is_open = None if seen is None else trie.open_prefixes(seen)  # seen items: closed per level
    for lv in range(n_levels):
        logp = model.step(state, tokens, lv, prefix)
        total, nxt = _next_hypotheses(logp, prefix, score, trie.child[lv])
        if is_open is not None:
            reachable = is_open[lv].gather(1, nxt.clamp(min=0).flatten(1)).view_as(nxt)
            total = total.masked_fill(~reachable, float("-inf"))
        width = k if lv == n_levels - 1 else beam
        width = min(width, total.shape[1] * total.shape[2])
        score, flat = total.flatten(1).topk(width, dim=1)
        V = total.shape[2]
        parents, tokens = flat // V, flat % V
        prefix = nxt.flatten(1).gather(1, flat)
        if lv < n_levels - 1:
            model.reorder(state, parents)
    items = torch.where(torch.isfinite(score), prefix, torch.full_like(prefix, -1))
    return items, score


@torch.no_grad()
def level_logprobs(
    model: SIDRecommender, hist: torch.Tensor, lengths: torch.Tensor, trie: Trie
) -> torch.Tensor:
    """Teacher-forced log-probability of every item's code at each level: (B, n_items,
    n_levels), -inf for items not in the trie. Expands every valid prefix level by level (no
    pruning)."""
    B, n_levels = hist.shape[0], len(trie.child)
    state = model.start(hist, lengths)
    tokens, rows = None, torch.zeros(B, 1, 0)
    out = torch.full((B, trie.n_prefixes[-1], n_levels), float("-inf"))
    for lv in range(n_levels):
        logp = model.step(state, tokens, lv)  # (B, P, V)
        table = trie.child[lv]  # (P, V)
        par, code = (table >= 0).nonzero(as_tuple=True)
        rows = torch.cat([rows[:, par], logp[:, par, code, None]], -1)
        if lv == n_levels - 1:
            out[:, table[par, code]] = rows
        else:
            # the children are exactly the next level's prefixes, in prefix-id order
            order = torch.argsort(table[par, code])
            par, code, rows = par[order], code[order], rows[:, order]
            model.reorder(state, par.expand(B, -1))
            tokens = code.expand(B, -1)
    return out


def score_all_items(
    model: SIDRecommender, hist: torch.Tensor, lengths: torch.Tensor, trie: Trie
) -> torch.Tensor:
    """Exact log-likelihood of every item in the trie for each user: (B, n_items), -inf for
    items not in the trie."""
    per_level = level_logprobs(model, hist, lengths, trie).unbind(-1)
    total = per_level[0]
    for lp in per_level[1:]:  # summed level by level, in the order beam search adds them
        total = total + lp
    return total


@torch.no_grad()
def score_items_above(
    model: SIDRecommender,
    hist: torch.Tensor,
    lengths: torch.Tensor,
    trie: Trie,
    threshold: torch.Tensor,
    states: list | None = None,
) -> torch.Tensor:
    """Exact log-likelihood of every item in the trie whose score is >= threshold (B,), per user;
    -inf for the others (B, n_items). An item's score is at most its prefix's (each level adds a
    log-probability <= 0), so a prefix already below a user's threshold is not expanded: only
    what could rank above the threshold is scored. With threshold -inf it equals
    `score_all_items`. Hypotheses are kept per user, padded to the batch's widest."""
    B = hist.shape[0]
    states = model.prefix_states(trie.paths) if states is None else states
    state = model.start(hist, lengths, states)
    n_levels = len(trie.child)
    prefix = torch.zeros(B, 1, dtype=torch.long)
    score = torch.zeros(B, 1)
    tokens = None
    out = torch.full((B, trie.n_prefixes[-1]), float("-inf"))
    for lv in range(n_levels):
        logp = model.step(state, tokens, lv, prefix)  # (B, P, V)
        total, nxt = _next_hypotheses(logp, prefix, score, trie.child[lv])
        keep = (nxt >= 0) & (total >= threshold[:, None, None])
        if lv == n_levels - 1:
            rows = torch.arange(B)[:, None, None].expand_as(nxt)
            out[rows[keep], nxt[keep]] = total[keep]
            break
        flat_keep = keep.flatten(1)  # (B, P*V): surviving (hypothesis, code) pairs
        width = max(int(flat_keep.sum(1).max()), 1)
        # surviving pairs first (stable order), padded with dead hypotheses scoring -inf
        order = torch.argsort((~flat_keep).to(torch.int8), dim=1, stable=True)[:, :width]
        alive = flat_keep.gather(1, order)
        V = total.shape[2]
        parents, tokens = order // V, order % V
        score = total.flatten(1).gather(1, order).masked_fill(~alive, float("-inf"))
        prefix = nxt.flatten(1).gather(1, order).masked_fill(~alive, -1)
        model.reorder(state, parents)
    return out
