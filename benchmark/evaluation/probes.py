"""Evaluation (DESIGN §5): run a served model over the pools and write what it did into an
evidence frame (`benchmark.metrics.evidence`). Every metric is then a numpy function of that frame
(`benchmark.metrics.definitions`); only the model-level measurements (retain geometry, code
purity) are computed here from the weights.

Pools: retain-test targets, forget-test targets (every test target of every user, protocol 2.0
splits) and the forget set (a seeded sample of D_f training examples). The original model's and the
retrain oracle's lists, latent ranks and (oracle) relearned ranks, and the original's lists with the
forget items banned, are computed once per (task, seed) and copied into every cell's evidence, so
each cell is scored against them on the same examples.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from benchmark.metrics.evidence import COLUMNS, forget_slots, latent_rows, slot_bits, target_ranks
from benchmark.metrics.protocol import (
    EvalConfig,  # its home is the torch-free protocol module; imported from here too
    ProtocolError,
    protocol_config,
)
from benchmark.metrics.ranking import ranks_from_scores
from benchmark.metrics.stat import MetricStat
from benchmark.recommender.data import histories, seen_items, to_codes
from benchmark.recommender.decoding import Trie, prefix_states, score_items_above
from benchmark.recommender.model import SIDRecommender, sid_logprob
from benchmark.recommender.sid import SemanticIds
from benchmark.recommender.train import recommend
from tasks.errors import TaskFileError
from tasks.prepare import PreparedTask
from tasks.spec import TaskSpec


@dataclass
class ServedModel:
    """A model as served: weights, tokenizer and decode-time ban."""

    model: SIDRecommender
    sids: SemanticIds
    banned: np.ndarray | None = None


def task_protocol(spec: TaskSpec, seed: int, split: str = "test") -> EvalConfig:
    """The EvalConfig of a run of task `spec` (its [evaluation] table over the harness's
    defaults) at `seed` on `split`; a TaskFileError naming the task when the table is bad."""
    try:
        return protocol_config(spec.evaluation, seed, split)
    except ProtocolError as exc:
        raise TaskFileError(f"task {spec.identity}: {exc}") from None


@dataclass
class Pools:
    eval_pos: np.ndarray  # every evaluation target position (test targets, or validation)
    retain: np.ndarray  # indices into eval_pos
    forget: np.ndarray
    collateral: np.ndarray  # retain targets whose item shares a level-1 code with F
    forget_set_pos: np.ndarray  # absolute positions of the forget-set targets
    latent_rows: np.ndarray  # indices into forget_set_pos whose latent ranks are measured

    @property
    def all_pos(self) -> np.ndarray:
        return np.concatenate([self.eval_pos, self.forget_set_pos])


def make_pools(task: PreparedTask, base_sids: SemanticIds, split: str, latent_sample: int) -> Pools:
    """split="valid" evaluates each user's validation target instead (hyper-parameter choice).
    The latent sample is seeded by the task's split seed: the same examples for every model."""
    c1 = base_sids.codes[:, 0]
    shared = np.isin(c1, np.unique(c1[task.forget_mask]))
    pos = task.test_pos if split == "test" else task.valid_pos
    in_f = task.forget_mask[task.seq_items[pos]]
    retain = np.flatnonzero(~in_f)
    return Pools(
        eval_pos=pos,
        retain=retain,
        forget=np.flatnonzero(in_f),
        collateral=retain[shared[task.seq_items[pos][retain]]],
        forget_set_pos=task.train_pos[task.forget_set],
        latent_rows=latent_rows(len(task.forget_set), latent_sample, task.spec.split.seed),
    )


def served_topk(task: PreparedTask, sm: ServedModel, positions: np.ndarray, kmax: int, beam: int):
    allowed = None if sm.banned is None else ~sm.banned
    codes, sizes = sm.sids.codes, sm.sids.sizes
    return recommend(sm.model, task, codes, sizes, positions, kmax, max(beam, kmax), allowed)


@torch.no_grad()
def latent_ranks(
    task: PreparedTask,
    model: SIDRecommender,
    codes_sets: list[np.ndarray],
    sizes,
    positions,
    batch_size: int = 64,
) -> np.ndarray:
    """0-based rank of each target when every item is scored by its best teacher-forced
    log-likelihood over the given SID assignments (no decode-time bans; seen items excluded;
    ties count against the target). Exact, but only items that could score at least the
    target's best score are expanded (`score_items_above`)."""
    model.eval()
    served = torch.tensor(codes_sets[-1])  # histories are encoded as the model serves them
    hist, lengths = histories(task, positions)
    # the served trie scores every item; another assignment only needs the items it gives a
    # different SID (TRACER's: the forget items alone), so its trie is small
    tries = [Trie(codes_sets[-1], sizes)]
    others = []
    for c in codes_sets[:-1]:
        changed = (c != codes_sets[-1]).any(1)
        if changed.any():
            tries.append(Trie(c, sizes, allowed=changed))
            others.append(c)
    states = [prefix_states(model, t.paths) for t in tries]
    targets = task.seq_items[positions]
    best = _best_target_scores(model, hist, lengths, served, [codes_sets[-1], *others], targets)
    # batches of similar thresholds prune alike (each batch expands as wide as its widest user)
    order = np.argsort(-best, kind="stable")
    ranks = np.empty(len(positions))
    for s in range(0, len(positions), batch_size):
        rows = order[s : s + batch_size]
        h, ln = to_codes(hist[rows], served), torch.as_tensor(lengths[rows])
        # a margin far above float error: a prefix is skipped only when certainly below
        threshold = torch.as_tensor(best[rows]) - 1e-3
        scores = torch.stack([
            score_items_above(model, h, ln, t, threshold, s)
            for t, s in zip(tries, states, strict=True)
        ])  # fmt: skip
        scores = scores.amax(0)
        scores[seen_items(task, positions[rows])] = float("-inf")
        ranks[rows] = ranks_from_scores(scores.cpu().numpy(), targets[rows])
    return ranks


@torch.no_grad()
def _best_target_scores(model, hist, lengths, served, codes_sets, targets) -> np.ndarray:
    """Each target's best teacher-forced log-likelihood over the SID assignments."""
    best = np.empty(len(targets), dtype=np.float32)
    for s in range(0, len(targets), 256):
        sl = slice(s, s + 256)
        memory, mask = model.encode_histories(
            to_codes(hist[sl], served), torch.as_tensor(lengths[sl])
        )
        tgt = torch.as_tensor(targets[sl])
        b = torch.full((len(tgt),), float("-inf"))
        for c in codes_sets:
            y = torch.tensor(c)[tgt]
            b = torch.maximum(b, sid_logprob(model.decode_targets(memory, mask, y), y))
        best[sl] = b.cpu().numpy()
    return best


def relearn(
    task: PreparedTask, sm: ServedModel, steps: int, sample: int, lr: float, seed: int
) -> SIDRecommender:
    """Fine-tune a copy for `steps` on `sample` D_f examples outside the forget-set pool
    (history -> target, 32 per step, cross-entropy of the target's SID per level)."""
    from benchmark.recommender.train import finetune

    model = copy.deepcopy(sm.model)
    for p in model.parameters():
        p.requires_grad_(True)
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(task.d_forget, task.forget_set)
    if len(pool) == 0:  # the forget-set pool took all of D_f (tiny tasks): relearn on it
        pool = task.d_forget
    chosen = task.train_pos[rng.choice(pool, size=min(sample, len(pool)), replace=False)]
    hist, lengths = histories(task, chosen)
    codes = torch.tensor(sm.sids.codes)
    y_all = codes[torch.as_tensor(task.seq_items[chosen])]

    def loss_fn(r: np.random.Generator):
        i = r.choice(len(chosen), size=min(32, len(chosen)), replace=False)
        memory, mask = model.encode_histories(to_codes(hist[i], codes), torch.as_tensor(lengths[i]))
        y = y_all[torch.as_tensor(i)]
        loss = -sid_logprob(model.decode_targets(memory, mask, y), y).mean() / y.shape[1]
        return loss, {"relearn": loss.detach()}

    finetune(model, steps, lr, loss_fn, seed, desc="relearn")
    return model


@dataclass
class ModelEvidence:
    """What one model did on the pools: served top-K lists (evaluation targets, then the forget
    set), forget-set latent ranks, and forget-set relearned ranks (when measured)."""

    topk: np.ndarray
    latent: np.ndarray
    relearned: np.ndarray | None = None
    seconds: dict = field(default_factory=dict)


def run_model(
    task: PreparedTask,
    pools: Pools,
    sm: ServedModel,
    cfg: EvalConfig,
    latent_codes: list[np.ndarray],
    with_relearn: bool,
) -> ModelEvidence:
    kmax = max(cfg.k_values(task))
    t0 = time.perf_counter()
    topk = served_topk(task, sm, pools.all_pos, kmax, cfg.beam)
    t1 = time.perf_counter()
    lat_pos = pools.forget_set_pos[pools.latent_rows]
    lat = np.empty(0)  # no SID assignments to score: served lists only (the banned original)
    if latent_codes:
        lat = latent_ranks(task, sm.model, latent_codes, sm.sids.sizes, lat_pos)
    t2 = time.perf_counter()
    seconds = {"decode": t1 - t0, "latent": t2 - t1}
    relearned = None
    if with_relearn:  # the attacker fine-tunes the weights and decodes without the service's ban
        c = cfg
        model = relearn(task, sm, c.relearn_steps, c.relearn_sample, c.relearn_lr, c.seed)
        fs_top = served_topk(task, ServedModel(model, sm.sids), pools.forget_set_pos, kmax, c.beam)
        relearned = target_ranks(fs_top, task.seq_items[pools.forget_set_pos])
        seconds["relearn"] = time.perf_counter() - t2
    return ModelEvidence(topk, lat, relearned, seconds)


@dataclass
class Reference:
    """What every method on a (task, seed) is scored against, computed once: the original model's
    and the retrain oracle's evidence on the same pools, and the original's served lists with the
    forget items banned at decode (the utility part's reference, DESIGN §5)."""

    pools: Pools
    original: ServedModel
    original_evidence: ModelEvidence
    oracle_evidence: ModelEvidence
    banned_evidence: ModelEvidence
    features: np.ndarray


def make_reference(
    task: PreparedTask,
    original: ServedModel,
    oracle: ServedModel,
    features: np.ndarray,
    cfg: EvalConfig,
    evidence: Callable[..., ModelEvidence] = run_model,
    oracle_first: bool = False,
) -> Reference:
    """`evidence`, with `run_model`'s arguments, gives one model's evidence (the cell context
    reads it from `benchmark.evaluation.reference` when there); `oracle_first` asks for the oracle's
    first (the part of a split group that built the oracle)."""
    pools = make_pools(task, original.sids, cfg.split, cfg.latent_sample)

    def of(sm: ServedModel, with_relearn: bool) -> ModelEvidence:
        # the oracle never knew the original tokenizer: its latent ranks use its own SIDs only
        return evidence(task, pools, sm, cfg, [sm.sids.codes], with_relearn)

    def banned() -> ModelEvidence:  # what `filter` serves: the same decode, so the same lists
        sm = ServedModel(original.model, original.sids, task.forget_mask.copy())
        return evidence(task, pools, sm, cfg, [], False)

    if oracle_first:
        orc, orig, ban = of(oracle, True), of(original, False), banned()
    else:
        orig, ban, orc = of(original, False), banned(), of(oracle, True)
    return Reference(pools, original, orig, orc, ban, features)


def evidence_frame(task: PreparedTask, ref: Reference, method: ModelEvidence) -> pd.DataFrame:
    """One row per evaluation example (columns: `benchmark.metrics.evidence`)."""
    p, fm = ref.pools, task.forget_mask
    n_eval, n_fs = len(p.eval_pos), len(p.forget_set_pos)
    pool = np.full(n_eval + n_fs, "forget_set", dtype=object)
    pool[p.retain], pool[p.forget] = "retain_test", "forget_test"
    collateral = np.zeros(n_eval + n_fs, dtype=bool)
    collateral[p.collateral] = True
    positions = p.all_pos
    targets = task.seq_items[positions]

    def fs_only(values: np.ndarray | None, rows: np.ndarray | None = None) -> np.ndarray:
        out = np.full(n_eval + n_fs, np.nan)
        if values is not None:
            out[n_eval + (np.arange(n_fs) if rows is None else rows)] = values
        return out

    models = {"": method, "original_": ref.original_evidence, "oracle_": ref.oracle_evidence}
    frame = {
        "pool": pool,
        "collateral": collateral,
        "position": positions.astype(np.int64),
        "target": targets.astype(np.int64),
        "topk": list(method.topk.astype(np.int32)),
        "n_candidates": task.n_candidates(positions),
    }
    for prefix, ev in models.items():
        frame[f"{prefix}rank"] = target_ranks(ev.topk, targets).astype(float)
        frame[f"{prefix}forget_bits"] = slot_bits(forget_slots(ev.topk, fm))
        frame[f"{prefix}latent_rank"] = fs_only(ev.latent, p.latent_rows)
    frame["banned_rank"] = target_ranks(ref.banned_evidence.topk, targets).astype(float)
    frame["relearn_rank"] = fs_only(method.relearned)
    frame["oracle_relearn_rank"] = fs_only(ref.oracle_evidence.relearned)
    return pd.DataFrame(frame)[list(COLUMNS)]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def retain_geometry(orig: ServedModel, unl: ServedModel, items: np.ndarray) -> float:
    """Spearman correlation of retain items' pairwise cosine similarities, original vs
    unlearned (representation = sum of the item's SID token embeddings)."""

    def sims(sm: ServedModel) -> np.ndarray:
        with torch.no_grad():
            v = sm.model.item_vectors(torch.as_tensor(sm.sids.codes[items]))
            v = torch.nn.functional.normalize(v, dim=-1)
            s = (v @ v.T).cpu().numpy()
        return s[np.triu_indices(len(items), 1)]

    return spearman(sims(orig), sims(unl))


def model_measurements(
    task: PreparedTask, ref: Reference, unl: ServedModel, cfg: EvalConfig
) -> dict[str, MetricStat]:
    """Model-level measurements (not per-example, so not in the evidence; self-reported in a
    submission): retain geometry and code purity."""
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.geometry_items, len(task.retain_items))
    items = np.sort(rng.choice(task.retain_items, size=n, replace=False))
    mask = ~task.forget_mask
    o = ref.original
    purity = unl.sids.code_purity(ref.features, 0, mask) / o.sids.code_purity(ref.features, 0, mask)
    return {
        "retain_geometry_spearman": MetricStat.single(retain_geometry(o, unl, items), n),
        "code_purity_ratio": MetricStat.single(float(purity), int(mask.sum())),
    }


def evaluate_unlearning(
    task: PreparedTask, ref: Reference, unl: ServedModel, cfg: EvalConfig
) -> tuple[pd.DataFrame, dict[str, MetricStat], dict[str, float]]:
    """(evidence frame, model-level measurements, evaluation seconds by part) of an unlearned
    model. Latent ranks use the better of the original and the served SID of each item."""
    o = ref.original
    same = np.array_equal(o.sids.codes, unl.sids.codes)
    codes = [o.sids.codes] if same else [o.sids.codes, unl.sids.codes]
    method = run_model(task, ref.pools, unl, cfg, codes, with_relearn=True)
    t0 = time.perf_counter()
    measurements = model_measurements(task, ref, unl, cfg)
    seconds = {**method.seconds, "geometry": time.perf_counter() - t0}
    return evidence_frame(task, ref, method), measurements, seconds
