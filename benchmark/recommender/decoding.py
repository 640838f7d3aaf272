"""Constrained decoding over valid SIDs: a tensorised prefix trie, the decoder state a search
carries between positions, batched beam search, and exhaustive teacher-forced scoring of every
item (an exact full ranking). Every search lives here; the model (model.py) only computes one
decoder position for given hypotheses.

Both score an item by the sum of its tokens' log-probabilities (each level normalised over that
level's whole codebook), so a wide enough beam returns exactly the exhaustive top-K.
"""

from __future__ import annotations

from dataclasses import dataclass

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


ROWS_PER_BLOCK = 2048  # rows of d_model floats: a block's activations stay in cache

PrefixStates = list[tuple[torch.Tensor, torch.Tensor]]  # per level: (x, q) of each prefix


def _blocks(t: torch.Tensor, rows_per_item: int) -> tuple[torch.Tensor, ...]:
    """t split along its first axis into blocks of about ROWS_PER_BLOCK rows of work (every row's
    arithmetic is the same as in one pass: linear layers and attention are row-independent)."""
    return t.split(max(1, ROWS_PER_BLOCK // max(rows_per_item, 1)))


@torch.no_grad()
def prefix_states(model: SIDRecommender, paths: list[torch.Tensor]) -> PrefixStates | None:
    """What a one-block decoder computes before it reads the history, for every prefix of a
    trie: per level l, (x, q) of each l-code prefix (`Trie.paths[l]`), by
    `SIDRecommender.prefix_stream`. Computed once per prefix instead of once per user and
    hypothesis. None for deeper decoders (their later blocks' self-attention reads the
    history)."""
    if len(model.decoder) != 1:
        return None
    return [model.prefix_stream(path) for path in paths]


@dataclass
class DecodeState:
    """What a search carries from one decoder position to the next: each user's cross-attention
    keys and values, and per hypothesis the decoder's self-attention cache; given the trie's
    prefix states instead, the cache stays empty and each hypothesis's prefix id (which the
    search keeps) selects its precomputed part."""

    model: SIDRecommender
    cross: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: (k, v) of each window
    window_of: torch.Tensor  # (B,): the window of user b
    mask: torch.Tensor  # (B, 1, 1, T): the valid history positions of user b
    cache: list  # per layer: None or (k, v), each (B, P, h, position, dh)
    prefixes: PrefixStates | None

    @classmethod
    def start(
        cls,
        model: SIDRecommender,
        hist: torch.Tensor,
        lengths: torch.Tensor,
        prefixes: PrefixStates | None = None,
        window_of: torch.Tensor | None = None,
    ) -> DecodeState:
        """Encode histories once and precompute every decoder layer's cross-attention keys/values.

        The decoder reads the encoder output at all valid positions (the history's last position
        sees the whole history under the causal encoder). `prefixes`: `prefix_states` of the
        trie the hypotheses walk, so that `step` reads each hypothesis's prefix part.
        window_of (B,), optional: hist holds W windows and user b's history is the first
        lengths[b] items of window window_of[b]; under the causal encoder those rows of the
        window's encoding are the history's own, so one encoder pass serves every history that
        is a prefix of the window."""
        blocks = [model.cross_keys(h) for h in _blocks(hist, hist.shape[1])]
        cross = [
            (torch.cat([b[i][0] for b in blocks]), torch.cat([b[i][1] for b in blocks]))
            for i in range(len(model.decoder))
        ]
        if window_of is None:
            window_of = torch.arange(hist.shape[0], device=hist.device)
        valid = torch.arange(hist.shape[1], device=hist.device) < lengths[:, None]
        cache = [None] * len(model.decoder)
        return cls(model, cross, window_of, valid[:, None, None, :], cache, prefixes)

    def step(
        self, tokens: torch.Tensor | None, level: int, prefix: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One decoder position for P hypotheses per user: log-probabilities (B, P, size_level).

        tokens (B, P): the code chosen at level-1 (None at level 0, the BOS position); prefix
        (B, P): each hypothesis's prefix id in the trie of the prefix states (-1: dead), read
        instead of the tokens when there are such states. Otherwise appends to the
        self-attention cache in place."""
        if self.prefixes is not None and prefix is not None:
            return self._step_from_prefixes(self.prefixes[level], prefix, level)
        x = self.model.decoder_input(tokens, level, (self.mask.shape[0], 1))
        cross = [(k[self.window_of], v[self.window_of]) for k, v in self.cross]
        return self.model.decode_position(x, self.cache, cross, self.mask, level)

    def _step_from_prefixes(
        self, states: tuple[torch.Tensor, torch.Tensor], prefix: torch.Tensor, level: int
    ) -> torch.Tensor:
        """`step` of a one-block decoder from its prefixes' states (x, q), in blocks of users."""
        x_of, q_of = states
        prefix = prefix.clamp(min=0)
        k, v = self.cross[0]
        out = []
        for u in _blocks(torch.arange(prefix.shape[0], device=prefix.device), prefix.shape[1]):
            p, window = prefix[u], self.window_of[u]
            history = (k[window], v[window])
            out.append(self.model.read_history(x_of[p], q_of[p], history, self.mask[u], level))
        return torch.cat(out)

    def reorder(self, parents: torch.Tensor) -> None:
        """Keep hypotheses `parents` (B, P'): gather the self-attention cache along P."""
        idx = parents[:, :, None, None, None]
        for i, kv in enumerate(self.cache):
            if kv is not None:
                self.cache[i] = tuple(t.gather(1, idx.expand(-1, -1, *t.shape[2:])) for t in kv)


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
    states: PrefixStates | None = None,
    window_of: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per user by constrained beam search. Returns (items (B, k), scores (B, k));
    item -1 with score -inf where fewer than k valid items were reachable.

    seen (B, n_items) bool, optional: items excluded per user (their history). states: the trie's
    prefixes as `prefix_states(model, trie.paths)` gives them (computed here when absent: pass them
    to decode several batches with one model and one trie). window_of (B,): user b's history is
    the first lengths[b] items of hist[window_of[b]] (`DecodeState.start`).
    """
    assert beam >= k
    B = lengths.shape[0]
    states = prefix_states(model, trie.paths) if states is None else states
    state = DecodeState.start(model, hist, lengths, states, window_of)
    prefix = torch.zeros(B, 1, dtype=torch.long)
    score = torch.zeros(B, 1)
    tokens = None
    n_levels = len(trie.child)
    is_open = None if seen is None else trie.open_prefixes(seen)  # seen items: closed per level
    for lv in range(n_levels):
        logp = state.step(tokens, lv, prefix)
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
            state.reorder(parents)
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
    state = DecodeState.start(model, hist, lengths)
    tokens, rows = None, torch.zeros(B, 1, 0)
    out = torch.full((B, trie.n_prefixes[-1], n_levels), float("-inf"))
    for lv in range(n_levels):
        logp = state.step(tokens, lv)  # (B, P, V)
        table = trie.child[lv]  # (P, V)
        par, code = (table >= 0).nonzero(as_tuple=True)
        rows = torch.cat([rows[:, par], logp[:, par, code, None]], -1)
        if lv == n_levels - 1:
            out[:, table[par, code]] = rows
        else:
            # the children are exactly the next level's prefixes, in prefix-id order
            order = torch.argsort(table[par, code])
            par, code, rows = par[order], code[order], rows[:, order]
            state.reorder(par.expand(B, -1))
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
    states: PrefixStates | None = None,
) -> torch.Tensor:
    """Exact log-likelihood of every item in the trie whose score is >= threshold (B,), per user;
    -inf for the others (B, n_items). An item's score is at most its prefix's (each level adds a
    log-probability <= 0), so a prefix already below a user's threshold is not expanded: only
    what could rank above the threshold is scored. With threshold -inf it equals
    `score_all_items`. Hypotheses are kept per user, padded to the batch's widest."""
    B = hist.shape[0]
    states = prefix_states(model, trie.paths) if states is None else states
    state = DecodeState.start(model, hist, lengths, states)
    n_levels = len(trie.child)
    prefix = torch.zeros(B, 1, dtype=torch.long)
    score = torch.zeros(B, 1)
    tokens = None
    out = torch.full((B, trie.n_prefixes[-1]), float("-inf"))
    for lv in range(n_levels):
        logp = state.step(tokens, lv, prefix)  # (B, P, V)
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
        state.reorder(parents)
    return out
