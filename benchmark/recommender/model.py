"""The generative recommender: a small T5-style encoder-decoder over semantic-ID tokens.

Encoder: one position per history item, its vector the sum of the item's SID code embeddings
(one embedding table per SID level) plus a position embedding; causal self-attention, so the
output at position t summarises the history up to t and one pass over a sequence trains every
next-item target in it. Decoder: generates the next item's SID level by level
([BOS, c1, c2, c3] -> [c1, c2, c3, d]) with causal self-attention and cross-attention to the
encoder; the output head of level l is tied to level l's embedding table, so adding a code at a
level (TRACER's fresh tokens) is one new row there. Pre-norm RMSNorm blocks, no biases, as in T5.

This file is the network only; generation (the search, its hypotheses and caches, the trie)
is `decoding.py`'s, which runs the decoder one position at a time by the methods under
"incremental decoding" below.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.recommender.options import recorded_config
from benchmark.util.atomic import write_text_atomic, written_atomic
from tasks.errors import BenchError
from tasks.untrusted import read_json_object

# Caps on what a config read from a file may ask for. Tensor sizes need none (they are compared
# with the weights file, whose size is bounded, before anything is allocated), but every layer
# and level is Python objects even on the meta device.
MAX_LAYERS = 64
MAX_LEVELS = 16
MAX_DIM = 2**31  # any one dimension (torch needs int64 element counts)


@dataclass
class ModelConfig:
    sizes: tuple[int, ...]  # codebook size of each SID level (from the tokenizer)
    d_model: int = 128
    n_heads: int = 4
    n_enc_layers: int = 2
    n_dec_layers: int = 1
    d_ff: int = 256
    dropout: float = 0.1  # on embeddings and residual branches
    attn_dropout: float = 0.0  # on attention probabilities (> 0 rules out the fused kernel)
    max_history: int = 50

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**{**d, "sizes": tuple(d["sizes"])})

    @classmethod
    def from_untrusted(cls, data: object, where: str) -> ModelConfig:
        """A config read from a file someone else wrote: every field typed and in range (counts
        positive, dropouts in [0, 1), heads dividing d_model); a one-line BenchError starting
        with `where` otherwise. Limits that follow from a task are the caller's."""
        cfg = recorded_config(cls, data, where)
        ranges = {"d_model": (1, MAX_DIM), "n_heads": (1, MAX_DIM), "d_ff": (1, MAX_DIM),
                  "max_history": (1, MAX_DIM), "n_enc_layers": (0, MAX_LAYERS),
                  "n_dec_layers": (0, MAX_LAYERS)}  # fmt: skip
        for name, (low, high) in ranges.items():
            if not low <= getattr(cfg, name) <= high:
                raise BenchError(f"{where}: field {name!r} must lie in [{low}, {high}], got "
                                 f"{getattr(cfg, name)}")  # fmt: skip
        if not 1 <= len(cfg.sizes) <= MAX_LEVELS or not all(1 <= s <= MAX_DIM for s in cfg.sizes):
            raise BenchError(f"{where}: field 'sizes' must list 1 to {MAX_LEVELS} codebook sizes "
                             f"in [1, {MAX_DIM}]")  # fmt: skip
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(cfg, name) < 1.0:
                raise BenchError(f"{where}: field {name!r} must lie in [0, 1)")
        if cfg.d_model % cfg.n_heads:
            raise BenchError(f"{where}: d_model {cfg.d_model} is not a multiple of n_heads "
                             f"{cfg.n_heads}")  # fmt: skip
        return cfg


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(F, "rms_norm"):  # fused kernel, torch >= 2.4
            return F.rms_norm(x, self.weight.shape, self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Dropout(nn.Module):
    """Inverted dropout with its mask drawn by `rand_like` (the same random stream as every other
    draw). On CPU this is about twice as fast as `F.dropout`, whose Bernoulli sampling dominated
    the training step's non-matmul time (reports/profile-cpu.md)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.h, self.dh = cfg.n_heads, cfg.d_model // cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=False)
        self.o = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.attn_dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:  # (..., T, d) -> (..., h, T, dh)
        return x.unflatten(-1, (self.h, self.dh)).transpose(-2, -3)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.heads(k), self.heads(v)

    def forward(self, x, kv=None, mask=None, causal=False) -> torch.Tensor:
        k, v = self.keys_values(x) if kv is None else kv
        return self.attend(self.q(x), k, v, mask, causal)

    def attend(self, q, k, v, mask=None, causal=False) -> torch.Tensor:
        """The output for projected queries q (..., T, d) over keys and values split in heads."""
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            self.heads(q), k, v, attn_mask=mask, dropout_p=p, is_causal=causal
        )
        return self.o(y.transpose(-2, -3).flatten(-2))


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(F.relu(self.up(x))))


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n1, self.attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.n2, self.ff = RMSNorm(cfg.d_model), FeedForward(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.n1(x), mask=mask))
        return x + self.ff(self.n2(x))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n1, self.self_attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.n2, self.cross_attn = RMSNorm(cfg.d_model), Attention(cfg)
        self.n3, self.ff = RMSNorm(cfg.d_model), FeedForward(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        attend_self: Callable[[torch.Tensor], torch.Tensor] | None,
        attend_history: Callable[[torch.Tensor], torch.Tensor],
        query: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The block's residual sequence, the same in training and decoding: self-attention,
        cross-attention to the history, feed-forward, each reading its own pre-norm. The callers
        differ only in how attention reads its keys: `attend_self(n1(x))` (None: x has had its
        self-attention, a decoder whose prefix states are precomputed) and `attend_history(q)`
        for the cross-attention queries q = cross_attn.q(n2(x)) (or `query`, precomputed)."""
        if attend_self is not None:
            x = x + self.drop(attend_self(self.n1(x)))
        q = self.cross_attn.q(self.n2(x)) if query is None else query
        x = x + self.drop(attend_history(q))
        return x + self.ff(self.n3(x))


class SIDRecommender(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.codes = nn.ModuleList(nn.Embedding(n, d) for n in cfg.sizes)  # tied with the heads
        self.enc_pos = nn.Embedding(cfg.max_history, d)
        self.dec_pos = nn.Embedding(len(cfg.sizes), d)
        self.bos = nn.Parameter(torch.zeros(d))
        self.encoder = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg.n_enc_layers))
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_dec_layers))
        self.enc_norm, self.dec_norm = RMSNorm(d), RMSNorm(d)
        self.drop = Dropout(cfg.dropout)
        self.apply(self._init)
        # optional output bias per level (key: str(level)); empty in base models, used by TRACER
        # to give fresh tokens their share of the original code's mass
        self.head_bias = nn.ParameterDict()

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    @property
    def n_levels(self) -> int:
        return len(self.cfg.sizes)

    def item_vectors(self, codes: torch.Tensor) -> torch.Tensor:
        """(..., n_levels) SID codes -> (..., d): the sum of the item's code embeddings."""
        return sum(self.codes[lv](codes[..., lv]) for lv in range(self.n_levels))

    def encode(self, hist: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """hist (B, T, n_levels) right-padded SID codes -> (B, T, d), causal: a position never
        reads the padding after it, so the lengths (B,) are not needed."""
        T = hist.shape[1]
        x = self.drop(self.item_vectors(hist) + self.enc_pos.weight[:T])
        mask = torch.ones(T, T, dtype=torch.bool, device=hist.device).tril()
        for block in self.encoder:
            x = block(x, mask)
        return self.enc_norm(x)

    def _decoder_inputs(self, target: torch.Tensor) -> torch.Tensor:
        """target codes (..., n_levels) -> decoder inputs (..., n_levels, d): BOS, c1, ..."""
        shifted = [self.bos.expand(*target.shape[:-1], -1)]
        shifted += [self.codes[lv](target[..., lv]) for lv in range(self.n_levels - 1)]
        return torch.stack(shifted, dim=-2) + self.dec_pos.weight

    def logits(self, h: torch.Tensor, level: int) -> torch.Tensor:
        out = h @ self.codes[level].weight.T
        bias = self.head_bias[str(level)] if str(level) in self.head_bias else None
        return out if bias is None else out + bias

    def forward(
        self,
        hist: torch.Tensor,
        lengths: torch.Tensor,
        target: torch.Tensor,
        keep: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Teacher-forced training pass over whole sequences.

        hist (B, T, n_levels): encoder input; target (B, T, n_levels): the item after each history
        position. Returns per-level logits, a list of (B, T, size_l); with `keep` (B, T) bool, the
        logits of the kept positions only, (N, size_l) in row-major order (as `x[keep]`).

        The decoder runs on kept positions only (padding and targets left out of the loss cost
        nothing there): it runs over every position x SID level, so its position-wise work
        (projections, feed-forward, norms, heads) dominates a step's arithmetic. Only
        cross-attention, which needs each position's place in its sequence, scatters its queries
        back into the (B, T * n_levels) layout.
        """
        B, T, L = target.shape
        full = keep is None
        if full:
            keep = torch.ones(B, T, dtype=torch.bool, device=hist.device)
        memory = self.encode(hist, lengths)
        x = self.drop(self._decoder_inputs(target[keep]))  # (N, L, d)
        # decoder tokens of the target after position t see encoder positions <= t
        see = torch.ones(T, T, dtype=torch.bool, device=hist.device).tril()
        cross_mask = see.repeat_interleave(L, dim=0)  # (T*L, T)
        for block in self.decoder:
            c = block.cross_attn

            def attend_history(q_kept: torch.Tensor, c: Attention = c) -> torch.Tensor:
                q = q_kept.new_zeros(B, T, L, q_kept.shape[-1])
                q[keep] = q_kept
                y = F.scaled_dot_product_attention(
                    c.heads(q.reshape(B, T * L, -1)), *c.keys_values(memory), attn_mask=cross_mask
                )
                return c.o(y.transpose(-2, -3).reshape(B, T, L, -1)[keep])

            x = block(x, partial(block.self_attn, causal=True), attend_history)
        h = self.dec_norm(x)
        out = [self.logits(h[:, lv], lv) for lv in range(L)]
        return [lg.reshape(B, T, -1) for lg in out] if full else out

    # --- single next-item targets (the methods' per-example losses) ---
    def encode_histories(self, hist: torch.Tensor, lengths: torch.Tensor):
        """(memory (N, T, d), key mask (N, 1, 1, T)) of right-padded histories."""
        valid = torch.arange(hist.shape[1], device=hist.device) < lengths[:, None]
        return self.encode(hist, lengths), valid[:, None, None, :]

    def decode_targets(self, memory: torch.Tensor, mask: torch.Tensor, target: torch.Tensor):
        """Teacher-forced per-level logits [(N, size_l)] of one target SID (N, n_levels) per
        history, the decoder reading the whole (valid) history."""
        x = self.drop(self._decoder_inputs(target))  # (N, L, d)
        for block in self.decoder:
            k, v = block.cross_attn.keys_values(memory)
            attend_history = partial(block.cross_attn.attend, k=k, v=v, mask=mask)
            x = block(x, partial(block.self_attn, causal=True), attend_history)
        h = self.dec_norm(x)
        return [self.logits(h[:, lv], lv) for lv in range(self.n_levels)]

    # --- incremental decoding: one new decoder position per hypothesis, for the searches of
    # decoding.py (which keep the caches, the hypotheses and the trie) ---
    def cross_keys(self, hist: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Every decoder layer's cross-attention keys and values, each (B, h, T, dh), of the
        histories hist (B, T, n_levels) (right-padded; the causal encoder needs no lengths)."""
        memory = self.encode(hist)
        return [blk.cross_attn.keys_values(memory) for blk in self.decoder]

    def decoder_input(
        self, tokens: torch.Tensor | None, level: int, shape: tuple[int, int]
    ) -> torch.Tensor:
        """The decoder's input at position `level` for (B, P) hypotheses, (B, P, d): BOS at level
        0 (tokens None), else the embedding of each hypothesis's previous code, tokens (B, P)."""
        if tokens is None:
            return (self.bos + self.dec_pos.weight[0]).expand(*shape, -1)
        return self.codes[level - 1](tokens) + self.dec_pos.weight[level]

    def decode_position(
        self,
        x: torch.Tensor,
        cache: list,
        cross: list[tuple[torch.Tensor, torch.Tensor]],
        mask: torch.Tensor,
        level: int,
    ) -> torch.Tensor:
        """Log-probabilities (B, P, size_level) of the code at position `level` of P hypotheses
        per user, from their inputs there x (B, P, d) (`decoder_input`). cache: per layer, the
        self-attention keys and values of the positions before (None before the first), each
        (B, P, h, position, dh), extended in place; cross: per layer, each user's keys and values
        (`cross_keys`), read under the key mask (B, 1, 1, T)."""
        for i, blk in enumerate(self.decoder):
            k, v = cross[i]
            attend_history = partial(blk.cross_attn.attend, k=k, v=v, mask=mask)
            x = blk(x, partial(_cached_self_attention, blk.self_attn, cache, i), attend_history)
        return self._log_probs(x, level)

    def prefix_stream(self, path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What a one-block decoder computes before it reads the history, for n prefixes of l
        codes, path (n, l): the residual stream after self-attention at position l and its
        cross-attention query, each (n, d). Self-attention reads only the prefix's own tokens, so
        both depend on the prefix alone; they are computed position by position with the cache
        of `decode_position`, so that `read_history` continues exactly as it would."""
        blk, n = self.decoder[0], path.shape[0]
        cache: list = [None]
        for j in range(path.shape[1] + 1):
            x = self.decoder_input(path[None, :, j - 1] if j else None, j, (1, n))
            y = _cached_self_attention(blk.self_attn, cache, 0, blk.n1(x))
        x = x + blk.drop(y)
        return x[0], blk.cross_attn.q(blk.n2(x))[0]

    def read_history(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        cross: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor,
        level: int,
    ) -> torch.Tensor:
        """A one-block decoder from its cross-attention on: log-probabilities (B, P, size_level)
        from the stream x and the query q (B, P, d) of `prefix_stream`, reading each user's keys
        and values `cross` under the key mask (B, 1, 1, T)."""
        blk = self.decoder[0]
        k, v = cross
        attend_history = partial(blk.cross_attn.attend, k=k, v=v, mask=mask)
        return self._log_probs(blk(x, None, attend_history, query=q), level)

    def _log_probs(self, x: torch.Tensor, level: int) -> torch.Tensor:
        return torch.log_softmax(self.logits(self.dec_norm(x), level), dim=-1)


def _cached_self_attention(a: Attention, cache: list, i: int, y: torch.Tensor) -> torch.Tensor:
    """Self-attention of one new position per hypothesis, y (B, P, d), over the positions before
    it: layer i's keys and values in `cache` (each (B, P, h, step, dh)), extended in place."""
    q = a.heads(a.q(y)).transpose(1, 2)  # (B, P, h, dh): one query per hypothesis
    k, v = (t.transpose(1, 2).unsqueeze(3) for t in a.keys_values(y))  # (B, P, h, 1, dh)
    if cache[i] is not None:
        k = torch.cat([cache[i][0], k], dim=3)
        v = torch.cat([cache[i][1], v], dim=3)
    cache[i] = (k, v)
    w = torch.softmax((q.unsqueeze(3) @ k.transpose(-1, -2)) / math.sqrt(a.dh), dim=-1)
    return a.o((w @ v).squeeze(3).flatten(-2))


def sid_logprob(logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """log p(SID y | history) from per-level logits [(N, V_l)] and codes y (N, L): (N,)."""
    return sum(
        torch.log_softmax(lg, -1).gather(1, y[:, lv : lv + 1])[:, 0] for lv, lg in enumerate(logits)
    )


def save_checkpoint(model: SIDRecommender, folder: Path, extra: dict | None = None) -> None:
    """weights as safetensors, config (and `extra`) as JSON, both written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with written_atomic(folder / "model.safetensors") as tmp:
        save_file(tensors, str(tmp))
    meta = {"config": model.cfg.to_dict(), **(extra or {})}
    write_text_atomic(folder / "config.json", json.dumps(meta, indent=2, sort_keys=True))


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the state of a model of `cfg`, from a model built on the meta
    device: nothing is allocated, however large `cfg`."""
    with torch.device("meta"):
        model = SIDRecommender(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def read_weights(path: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file that holds a model of `cfg`. Names, shapes and dtypes
    (float32) are read from the header and compared with `cfg` before any tensor data is read;
    besides the model's state, only output biases `head_bias.<level>` of shape (sizes[level],)
    may appear. A one-line BenchError naming the file otherwise."""
    from safetensors import SafetensorError, safe_open

    want = expected_tensors(cfg)
    biases = {f"head_bias.{lv}": (size,) for lv, size in enumerate(cfg.sizes)}
    try:
        with safe_open(str(path), framework="pt") as fh:
            names = list(fh.keys())
            if len(names) > len(want) + len(biases):
                raise BenchError(f"{path}: {len(names)} tensors, a model of this config has at "
                                 f"most {len(want) + len(biases)}")  # fmt: skip
            for name in names:
                tensor = fh.get_slice(name)
                shape = tuple(tensor.get_shape())
                if shape != want.get(name, biases.get(name)):
                    raise BenchError(f"{path}: tensor {name[:60]!r} of shape {shape[:8]} does not "
                                     "match the model config")  # fmt: skip
                if tensor.get_dtype() != "F32":
                    raise BenchError(f"{path}: tensor {name!r} is {tensor.get_dtype()}, not F32")
            missing = sorted(set(want) - set(names))
            if missing:
                raise BenchError(f"{path}: tensors do not match the model config (missing "
                                 f"{missing[:3]})")  # fmt: skip
            return {name: fh.get_tensor(name) for name in names}
    except SafetensorError as exc:
        raise BenchError(f"{path}: not a safetensors file ({exc})") from None


def model_from_weights(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> SIDRecommender:
    """A model of `cfg` (in eval mode) holding `state`, as `read_weights` checked it."""
    model = SIDRecommender(cfg)
    for key, value in state.items():
        if key.startswith("head_bias."):
            model.head_bias[key.split(".", 1)[1]] = nn.Parameter(
                torch.zeros_like(value, device=model.bos.device)
            )
    model.load_state_dict(state)
    model.eval()
    return model


def load_checkpoint(folder: Path) -> tuple[SIDRecommender, dict]:
    """A checkpoint saved by `save_checkpoint` (a cached one, or one a board published): its
    config.json read as untrusted JSON, its weights checked against that config first."""
    meta = read_json_object(folder / "config.json")
    cfg = ModelConfig.from_untrusted(meta.get("config"), f"{folder / 'config.json'}: config")
    return model_from_weights(cfg, read_weights(folder / "model.safetensors", cfg)), meta
