"""Performance of the SID recommender against a Hugging Face T5 of the same size.

Everything is measured in one process, on the same data, with the contenders interleaved round by
round (so a load change on the machine hits every contender alike):

(a) Training throughput in examples/s, one example being one (history, next item) target and a
    step being forward + backward + gradient clipping + AdamW. Ours trains a batch of sequence
    windows (`training_windows`) in one pass, every target of a window at once. The peers see
    exactly the targets inside the same windows, one example per target, with the history the
    causal encoder gives ours for that target (the window's items up to it):
    - "HF T5 tokens": `T5ForConditionalGeneration` fed TIGER-style, every SID token of the
      history in the encoder (up to max_history x n_levels positions), labels = the target's
      n_levels tokens;
    - "HF T5 items": the same model fed `inputs_embeds` = one vector per history item (the sum of
      its code embeddings), which separates the gain of item-level encoder positions from the gain
      of ours training every target of a sequence in one pass.
    Peer batches are built (tokenised, padded to their longest history) before timing; ours'
    step includes its numpy-to-tensor conversion, as in `train_model`.
(b) Top-k decoding time for the test users: ours (`beam_search` over the SID trie, beam 20, seen
    items not excluded) against HF `generate` with the same beam and the same trie enforced by
    `prefix_allowed_tokens_fn` on the token-level model. Weights are untrained (random init):
    the cost of constrained beam search does not depend on them.
(c) Model FLOPs of a training step (forward + backward, `FlopCounterMode`) and the achieved
    GFLOP/s, against the machine's fp32 matmul GFLOP/s measured in the same process.
(d) Peak resident memory of the process.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tabulate import tabulate
from torch import nn

from benchmark.recommender.data import histories, to_codes, training_windows
from benchmark.recommender.decoding import Trie, beam_search
from benchmark.recommender.model import ModelConfig, SIDRecommender
from benchmark.recommender.train import TrainConfig, sequence_loss
from benchmark.util.memory import peak_rss_mib
from tasks.prepare import PreparedTask

PAD, EOS, BOS = 0, 1, 2  # special tokens of the HF peer; SID tokens follow, level by level
N_SPECIAL = 3
HF_TOKENS = "HF T5, SID tokens in encoder"
HF_ITEMS = "HF T5, item vectors (inputs_embeds)"
OURS = "ours"
FLOP_PEER_STEPS = 2  # peer FLOPs/example are counted on this many steps of the first round

LossFn = Callable[[], torch.Tensor]


# ---- token layout of the HF peer -----------------------------------------------------------------


def level_offsets(sizes: tuple[int, ...]) -> np.ndarray:
    """Token id of code 0 at each level: level l's codes are tokens offset[l] + code."""
    return N_SPECIAL + np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64)


def item_tokens(codes: np.ndarray, sizes: tuple[int, ...]) -> torch.Tensor:
    """(n_items, n_levels) SID codes -> the items' token ids in the peer's vocabulary."""
    return torch.from_numpy(codes.astype(np.int64) + level_offsets(sizes))


def allowed_next_tokens(tokens: torch.Tensor) -> dict[tuple[int, ...], list[int]]:
    """The SID trie over token ids: every valid prefix -> the tokens that may follow it."""
    table: dict[tuple[int, ...], set[int]] = {}
    for row in tokens.tolist():
        for lv in range(len(row)):
            table.setdefault(tuple(row[:lv]), set()).add(row[lv])
    return {prefix: sorted(nxt) for prefix, nxt in table.items()}


def t5_peer(model_cfg: ModelConfig, vocab_size: int):
    """A randomly initialised `T5ForConditionalGeneration` the size of our model."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size,
        d_model=model_cfg.d_model,
        d_kv=model_cfg.d_model // model_cfg.n_heads,
        d_ff=model_cfg.d_ff,
        num_layers=model_cfg.n_enc_layers,
        num_decoder_layers=model_cfg.n_dec_layers,
        num_heads=model_cfg.n_heads,
        dropout_rate=model_cfg.dropout,
        feed_forward_proj="relu",
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
    )
    return T5ForConditionalGeneration(config)


# ---- examples ------------------------------------------------------------------------------------


def window_examples(
    inp: np.ndarray, tgt: np.ndarray, msk: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The targets inside windows as single examples: (histories (N, T) right-padded with -1,
    lengths (N,), targets (N,)). The history of a window's target j is the window's inputs up
    to j, exactly what ours' causal encoder sees for it."""
    w, j = np.nonzero(msk)
    T = inp.shape[1]
    hist = np.where(np.arange(T)[None, :] <= j[:, None], inp[w], -1)
    return hist, j + 1, tgt[w, j]


def hf_batch(
    hist: np.ndarray, lengths: np.ndarray, target: np.ndarray, tokens: torch.Tensor, items: bool
) -> dict[str, torch.Tensor]:
    """Peer inputs padded to the longest history of the batch.

    items=False: `input_ids` (B, T * n_levels), every SID token of the history.
    items=True: `item_ids` (B, T, n_levels), summed into one vector per item at step time.
    """
    T = int(lengths.max())
    h = torch.from_numpy(hist[:, :T])
    valid = h >= 0
    ids = tokens[h.clamp(min=0)].masked_fill(~valid[..., None], PAD)  # (B, T, L)
    labels = tokens[torch.from_numpy(target)]
    if items:
        return {"item_ids": ids, "attention_mask": valid.long(), "labels": labels}
    mask = valid.repeat_interleave(tokens.shape[1], dim=1).long()
    return {"input_ids": ids.flatten(1), "attention_mask": mask, "labels": labels}


def hf_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    if "item_ids" in batch:
        vectors = model.get_input_embeddings()(batch["item_ids"]).sum(-2)
        return model(
            inputs_embeds=vectors, attention_mask=batch["attention_mask"], labels=batch["labels"]
        ).loss
    return model(**batch).loss


def recent(hist: np.ndarray, lengths: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the last m items of right-padded histories."""
    if hist.shape[1] <= m:
        return hist, lengths
    new = np.minimum(lengths, m)
    idx = (lengths - new)[:, None] + np.arange(m)[None, :]
    kept = np.take_along_axis(hist, np.minimum(idx, hist.shape[1] - 1), axis=1)
    return np.where(np.arange(m)[None, :] < new[:, None], kept, -1), new


# ---- measuring -----------------------------------------------------------------------------------


def _cpu_sdpa_flops() -> dict:
    """FLOP formulas for CPU fused attention, which `FlopCounterMode` does not count itself (the
    training steps here take the math path, counted as bmm; this keeps the count right if not)."""
    from torch.utils import flop_counter as fc

    ops = torch.ops.aten
    if not hasattr(ops, "_scaled_dot_product_flash_attention_for_cpu"):
        return {}

    def forward(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_flop_count(q, k, v)

    def backward(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        return fc.sdpa_backward_flop_count(grad_out, q, k, v)

    return {
        ops._scaled_dot_product_flash_attention_for_cpu: forward,
        ops._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }


def count_flops(loss_fn: LossFn) -> int:
    """Model FLOPs of one forward + backward (matmul-like ops, as FlopCounterMode counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_cpu_sdpa_flops()) as counter:
        loss_fn().backward()
    return int(counter.get_total_flops())


def matmul_gflops(n: int = 2048, min_seconds: float = 0.5) -> float:
    """fp32 `torch.mm` throughput of an n x n product, GFLOP/s, at the current thread count."""
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    reps, start = 0, time.perf_counter()
    while reps < 2 or time.perf_counter() - start < min_seconds:
        torch.mm(a, b, out=c)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


@dataclass
class Contender:
    """A model under training measurement: its loss closures per round, with example counts."""

    name: str
    model: nn.Module
    rounds: list[list[tuple[LossFn, int]]]  # rounds[0] is the warm-up round
    seconds: float = 0.0
    examples: int = 0
    flops: int = 0  # counted over the rounds passed to `count_round`
    flop_examples: int = 0
    opt: torch.optim.Optimizer = field(init=False)

    def __post_init__(self) -> None:
        cfg = TrainConfig()
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def step(self, loss_fn: LossFn) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()

    def timed_step(self, loss_fn: LossFn, n: int) -> None:
        start = time.perf_counter()
        self.step(loss_fn)
        self.seconds += time.perf_counter() - start
        self.examples += n

    def count_round(self, r: int, max_steps: int | None = None) -> None:
        for loss_fn, n in self.rounds[r][:max_steps]:
            self.opt.zero_grad(set_to_none=True)
            self.flops += count_flops(loss_fn)
            self.flop_examples += n
        self.opt.zero_grad(set_to_none=True)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds

    @property
    def flops_per_example(self) -> float:
        return self.flops / self.flop_examples


def _timed_round(contenders: list[Contender], r: int) -> None:
    """Round r of every contender, their steps interleaved one by one (ours has one step per
    round, a peer several), starting with a different contender each round."""
    shift = r % len(contenders)
    order = contenders[shift:] + contenders[:shift]
    for i in range(max(len(c.rounds[r]) for c in order)):
        for c in order:
            if i < len(c.rounds[r]):
                c.timed_step(*c.rounds[r][i])


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[perf {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _row(measure: str, ours: float, peer: str, peer_value: float | None, note: str = "") -> dict:
    ratio = None if peer_value is None else ours / peer_value
    return {
        "measure": measure,
        "ours": ours,
        "peer": peer,
        "peer_value": peer_value,
        "ratio": ratio,
        "note": note,
    }


def _train_contenders(
    task: PreparedTask,
    codes: np.ndarray,
    sizes: tuple[int, ...],
    model_cfg: ModelConfig,
    batches: int,
    batch_size: int,
    hf_batch_size: int,
    rng: np.random.Generator,
) -> list[Contender]:
    inp, tgt, msk = training_windows(task, max_len=model_cfg.max_history)
    n_windows = (batches + 1) * batch_size  # one extra batch for the warm-up
    if n_windows > len(inp):
        raise ValueError(
            f"{batches} timed + 1 warm-up batches of {batch_size} windows need {n_windows} "
            f"windows; the task has {len(inp)}"
        )
    windows = rng.choice(len(inp), size=n_windows, replace=False).reshape(batches + 1, batch_size)
    codes_t = torch.from_numpy(codes.astype(np.int64))
    tokens = item_tokens(codes, sizes)
    vocab = N_SPECIAL + int(sum(sizes))

    torch.manual_seed(int(rng.integers(2**31)))
    ours = SIDRecommender(model_cfg)
    torch.manual_seed(int(rng.integers(2**31)))
    hf_tok, hf_item = t5_peer(model_cfg, vocab), t5_peer(model_cfg, vocab)
    hf_item.load_state_dict(hf_tok.state_dict())  # same start; only the input layout differs

    def ours_loss(idx: np.ndarray) -> LossFn:
        return lambda: sequence_loss(ours, codes_t, inp[idx], tgt[idx], msk[idx])

    def peer_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> LossFn:
        return lambda: hf_loss(model, batch)

    ours_rounds, tok_rounds, item_rounds = [], [], []
    for idx in windows:
        ours_rounds.append([(ours_loss(idx), int(msk[idx].sum()))])
        hist, lengths, target = window_examples(inp[idx], tgt[idx], msk[idx])
        order = rng.permutation(len(target))  # shuffled, as a data loader would
        tok_round, item_round = [], []
        for s in range(0, len(order), hf_batch_size):
            sel = order[s : s + hf_batch_size]
            args = hist[sel], lengths[sel], target[sel], tokens
            tok_round.append((peer_loss(hf_tok, hf_batch(*args, items=False)), len(sel)))
            item_round.append((peer_loss(hf_item, hf_batch(*args, items=True)), len(sel)))
        tok_rounds.append(tok_round)
        item_rounds.append(item_round)
    return [
        Contender(OURS, ours, ours_rounds),
        Contender(HF_TOKENS, hf_tok, tok_rounds),
        Contender(HF_ITEMS, hf_item, item_rounds),
    ]


@dataclass
class DecodeTiming:
    users: int  # test users decoded by ours
    ours_seconds: float
    hf_users: int  # the first hf_users of them decoded by HF (all, unless over the budget)
    hf_seconds: float  # over hf_users
    ours_invalid: int  # top-k slots without a valid item
    hf_invalid: int

    @property
    def hf_seconds_all(self) -> float:
        """HF time for all users, extrapolated linearly when only a subset was decoded."""
        return self.hf_seconds * self.users / self.hf_users


def time_decoding(
    ours: SIDRecommender,
    hf: nn.Module,
    task: PreparedTask,
    codes: np.ndarray,
    sizes: tuple[int, ...],
    positions: np.ndarray,
    k: int,
    beam: int,
    chunk: int,
    budget_s: float,
    progress: bool = False,
) -> DecodeTiming:
    """Top-k for the histories before `positions`, ours and HF interleaved chunk by chunk. HF
    stops once its next chunk would take it over `budget_s` (at least one chunk runs)."""
    ours.eval()
    hf.eval()
    L = len(sizes)
    trie = Trie(codes, sizes)
    codes_t = torch.from_numpy(codes.astype(np.int64))
    tokens = item_tokens(codes, sizes)
    allowed = allowed_next_tokens(tokens)
    token_to_item = {tuple(row): i for i, row in enumerate(tokens.tolist())}
    hist, lengths = recent(*histories(task, positions), ours.cfg.max_history)

    def prefix_fn(batch_id: int, ids: torch.Tensor) -> list[int]:
        return allowed.get(tuple(ids[1:].tolist()), [PAD])  # PAD: a dead (-inf) hypothesis

    def run_ours(sl: slice) -> int:
        h, n = to_codes(hist[sl], codes_t), torch.from_numpy(lengths[sl])
        items, _ = beam_search(ours, h, n, trie, k, beam)
        return int((items < 0).sum())

    def run_hf(sl: slice) -> int:
        n = lengths[sl]
        batch = hf_batch(hist[sl], n, np.zeros(len(n), dtype=np.int64), tokens, items=False)
        with torch.no_grad():
            out = hf.generate(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                num_beams=beam,
                num_return_sequences=k,
                max_new_tokens=L,
                do_sample=False,
                prefix_allowed_tokens_fn=prefix_fn,
                decoder_start_token_id=BOS,
                pad_token_id=PAD,
                eos_token_id=EOS,
            )
        return sum(tuple(row[1 : L + 1]) not in token_to_item for row in out.tolist())

    warm = slice(0, min(8, len(positions)))
    run_ours(warm)
    run_hf(warm)
    ours_s = hf_s = 0.0
    hf_users = ours_invalid = hf_invalid = 0
    for s in range(0, len(positions), chunk):
        sl = slice(s, min(s + chunk, len(positions)))
        size = sl.stop - sl.start
        start = time.perf_counter()
        ours_invalid += run_ours(sl)
        ours_s += time.perf_counter() - start
        if hf_users == 0 or (hf_users == s and hf_s * (1 + size / hf_users) <= budget_s):
            start = time.perf_counter()
            hf_invalid += run_hf(sl)
            hf_s += time.perf_counter() - start
            hf_users += size
        _log(f"decoded {sl.stop}/{len(positions)} users (HF: {hf_users})", progress)
    return DecodeTiming(len(positions), ours_s, hf_users, hf_s, ours_invalid, hf_invalid)


def run_perf(
    task: PreparedTask,
    codes: np.ndarray,
    sizes: tuple[int, ...],
    model_cfg: ModelConfig,
    batches: int,
    seed: int,
    *,
    batch_size: int | None = None,
    hf_batch_size: int = 256,
    decode_users: int | None = None,
    decode_chunk: int = 64,
    decode_budget_s: float = 180.0,
    k: int = 10,
    beam: int = 20,
    threads: int = 2,
    matmul_size: int = 2048,
    progress: bool = True,
) -> list[dict]:
    """Measure ours against HF T5 peers; returns table rows (see `print_perf_table`).

    codes (n_items, n_levels) and sizes: the SIDs (e.g. `fit_semantic_ids(...).codes/.sizes`);
    model_cfg: our model's size, which the peers copy (its `sizes` must equal `sizes`);
    batches: timed training batches of `batch_size` windows (default `TrainConfig.batch_size`),
    plus one warm-up batch; the peers train on the same targets in batches of `hf_batch_size`.
    Decoding: the first `decode_users` test users (default all), `decode_chunk` users per call;
    HF stops after `decode_budget_s` seconds and its time is extrapolated to all users.
    threads: torch threads during the run (restored afterwards); matmul_size: n of the n x n
    fp32 matmul that measures the machine's peak (before training, after it, after decoding).
    """
    sizes = tuple(int(s) for s in sizes)
    if tuple(model_cfg.sizes) != sizes:
        raise ValueError(f"model_cfg.sizes {tuple(model_cfg.sizes)} != SID sizes {sizes}")
    if codes.shape[1] != len(sizes):
        raise ValueError(f"codes have {codes.shape[1]} levels, sizes {len(sizes)}")
    if batches < 1:
        raise ValueError("batches must be >= 1")
    batch_size = batch_size or TrainConfig().batch_size
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        loads = [os.getloadavg()[0]]
        peaks = [matmul_gflops(matmul_size)]
        _log(f"fp32 matmul: {peaks[0]:.0f} GFLOP/s", progress)
        contenders = _train_contenders(
            task, codes, sizes, model_cfg, batches, batch_size, hf_batch_size, rng
        )
        _log("built the training batches; warming up", progress)
        for c in contenders:
            c.model.train()
            for loss_fn, _ in (c.rounds[0] * 2)[:2]:  # warm-up, untimed
                c.step(loss_fn)
        for r in range(1, batches + 1):
            _timed_round(contenders, r)
            rates = ", ".join(f"{c.name}: {c.examples_per_s:.0f}" for c in contenders)
            _log(f"training round {r}/{batches}: examples/s {rates}", progress)
        ours, hf_tok, hf_item = contenders
        for r in range(1, batches + 1):
            ours.count_round(r)
        hf_tok.count_round(1, FLOP_PEER_STEPS)
        hf_item.count_round(1, FLOP_PEER_STEPS)
        peaks.append(matmul_gflops(matmul_size))
        _log("counted FLOPs; decoding", progress)

        positions = task.test_pos[:decode_users]
        decode = time_decoding(
            ours.model, hf_tok.model, task, codes, sizes, positions, k, beam,
            decode_chunk, decode_budget_s, progress,
        )  # fmt: skip
        peaks.append(matmul_gflops(matmul_size))
        loads.append(os.getloadavg()[0])
    finally:
        torch.set_num_threads(old_threads)

    peak = max(peaks)
    ours_gflops = ours.flops / ours.seconds / 1e9
    hf_gflops = hf_tok.flops_per_example * hf_tok.examples_per_s / 1e9
    n_params = [sum(p.numel() for p in c.model.parameters()) for c in contenders]
    train_note = (
        f"{batches} timed batches, {ours.examples} targets from {batches * batch_size} windows "
        f"(peers: batches of {hf_batch_size}); forward+backward+AdamW"
    )
    subset = "all users" if decode.hf_users == decode.users else f"first {decode.hf_users} users"
    decode_note = (
        f"untrained weights; beam {beam}, trie-constrained, seen items kept; HF: {subset}, "
        f"time scaled to {decode.users}; invalid slots ours {decode.ours_invalid}, "
        f"HF {decode.hf_invalid}"
    )
    flops_note = (
        f"forward+backward; ours counted on every timed batch, peers on {FLOP_PEER_STEPS} batches"
    )
    rows = [
        _row("parameters", n_params[0], HF_TOKENS, n_params[1], "HF: relative position bias"),
        _row("train examples/s", ours.examples_per_s, HF_TOKENS, hf_tok.examples_per_s, train_note),
        _row("train examples/s", ours.examples_per_s, HF_ITEMS, hf_item.examples_per_s),
        _row(
            "train MFLOP/example (lower better)",
            ours.flops_per_example / 1e6,
            HF_TOKENS,
            hf_tok.flops_per_example / 1e6,
            flops_note,
        ),
        _row(
            "train MFLOP/example (lower better)",
            ours.flops_per_example / 1e6,
            HF_ITEMS,
            hf_item.flops_per_example / 1e6,
        ),
        _row("train achieved GFLOP/s", ours_gflops, HF_TOKENS, hf_gflops),
        _row(
            "train achieved GFLOP/s",
            ours_gflops,
            f"fp32 matmul peak, {matmul_size}^2 mm",
            peak,
            f"{threads} threads; matmul runs {', '.join(f'{p:.0f}' for p in peaks)}; "
            f"1-min load average at start {loads[0]:.1f}, end {loads[1]:.1f} "
            "(contention shows as spread)",
        ),
        _row(
            f"top-{k} decode s, {decode.users} users (lower better)",
            decode.ours_seconds,
            "HF T5 generate (tokens)",
            decode.hf_seconds_all,
            decode_note,
        ),
        _row("peak RSS MiB (whole process)", peak_rss_mib(), "-", None),
    ]
    return rows


NUMERIC = ("ours", "peer_value", "ratio")


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, int) or abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def format_perf_table(rows: list[dict]) -> str:
    keys = ("measure", "ours", "peer", "peer_value", "ratio", "note")
    table = [[_fmt(r[k]) if k in NUMERIC else r[k] for k in keys] for r in rows]
    headers = ["measure", "ours", "peer", "peer value", "ours / peer", "note"]
    return tabulate(table, headers=headers, disable_numparse=True)


def print_perf_table(rows: list[dict]) -> None:
    print(format_perf_table(rows))
