"""Evaluation (DESIGN §5): run a served model over the pools and write what it did into an
evidence frame (`benchmark.evidence`). Every metric is then a numpy function of that frame
(`benchmark.metrics`); only the model-level measurements (retain geometry, code purity) are
computed here from the weights.

Pools: retain-test targets, forget-test targets (every test target of every user, protocol 2.0)
and the forget set (a seeded sample of D_f training examples). The original model's and the retrain
oracle's lists, latent ranks and (oracle) relearned ranks are computed once per (task, seed) and
copied into every cell's evidence, so each cell is scored against them on the same examples.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from benchmark.data import histories, seen_items, to_codes
from benchmark.decoding import Trie, score_all_items
from benchmark.evidence import COLUMNS, forget_slots, slot_bits, target_ranks
from benchmark.metrics import HEADLINE_K, ranks_from_scores
from benchmark.model import SIDRecommender
from benchmark.sid import SemanticIds
from benchmark.train import recommend
from tasks.prepare import PreparedTask


@dataclass
class ServedModel:
    """A model as served: weights, tokenizer and decode-time ban."""

    model: SIDRecommender
    sids: SemanticIds
    banned: np.ndarray | None = None


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] | None = None  # None: the task's k_values
    beam: int = 20
    relearn_steps: int = 30
    relearn_sample: int = 256
    relearn_lr: float = 1e-3
    geometry_items: int = 400
    seed: int = 0
    split: str = "test"  # "valid": validation targets, for choosing hyper-parameters

    def k_values(self, task: PreparedTask) -> tuple[int, ...]:
        """The K values evaluated: the task's (or this config's), always with the headline's K."""
        return tuple(sorted(set(self.ks or task.spec.k_values) | {HEADLINE_K}))


@dataclass
class Pools:
    eval_pos: np.ndarray  # every evaluation target position (test targets, or validation)
    retain: np.ndarray  # indices into eval_pos
    forget: np.ndarray
    collateral: np.ndarray  # retain targets whose item shares a level-1 code with F
    forget_set_pos: np.ndarray  # absolute positions of the forget-set targets

    @property
    def all_pos(self) -> np.ndarray:
        return np.concatenate([self.eval_pos, self.forget_set_pos])


def make_pools(task: PreparedTask, base_sids: SemanticIds, split: str = "test") -> Pools:
    """split="valid" evaluates each user's validation target instead (hyper-parameter choice)."""
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
    log-likelihood over the given SID assignments (no decode-time bans; seen items excluded)."""
    model.eval()
    served = torch.tensor(codes_sets[-1])  # histories are encoded as the model serves them
    hist, lengths = histories(task, positions)
    tries = [Trie(c, sizes) for c in codes_sets]
    targets = task.seq_items[positions]
    ranks = np.empty(len(positions))
    for s in range(0, len(positions), batch_size):
        sl = slice(s, s + batch_size)
        h, ln = to_codes(hist[sl], served), torch.as_tensor(lengths[sl])
        scores = torch.stack([score_all_items(model, h, ln, t) for t in tries]).amax(0)
        scores[seen_items(task, positions[sl])] = float("-inf")
        ranks[sl] = ranks_from_scores(scores.cpu().numpy(), targets[sl])
    return ranks


def relearn(
    task: PreparedTask, sm: ServedModel, steps: int, sample: int, lr: float, seed: int
) -> SIDRecommender:
    """Fine-tune a copy for `steps` on `sample` D_f examples outside the forget-set pool."""
    from benchmark.data import training_windows
    from benchmark.train import finetune, sequence_loss

    model = copy.deepcopy(sm.model)
    for p in model.parameters():
        p.requires_grad_(True)
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(task.d_forget, task.forget_set)
    if len(pool) == 0:  # the forget-set pool took all of D_f (tiny tasks): relearn on it
        pool = task.d_forget
    chosen = task.train_pos[rng.choice(pool, size=min(sample, len(pool)), replace=False)]
    ok = np.zeros(len(task.seq_items), dtype=bool)
    ok[chosen] = True
    inp, tgt, msk = training_windows(task, ok)
    keep = msk.any(1)
    inp, tgt, msk = inp[keep], tgt[keep], msk[keep]
    codes = torch.tensor(sm.sids.codes)

    def loss_fn(r: np.random.Generator):
        i = r.choice(len(inp), size=min(32, len(inp)), replace=False)
        loss = sequence_loss(model, codes, inp[i], tgt[i], msk[i])
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
    lat = latent_ranks(task, sm.model, latent_codes, sm.sids.sizes, pools.forget_set_pos)
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
    and the retrain oracle's evidence on the same pools."""

    pools: Pools
    original: ServedModel
    original_evidence: ModelEvidence
    oracle_evidence: ModelEvidence
    features: np.ndarray


def make_reference(
    task: PreparedTask,
    original: ServedModel,
    oracle: ServedModel,
    features: np.ndarray,
    cfg: EvalConfig,
) -> Reference:
    pools = make_pools(task, original.sids, cfg.split)
    orig = run_model(task, pools, original, cfg, [original.sids.codes], with_relearn=False)
    # the oracle never knew the original tokenizer: its latent ranks use its own SIDs only
    orc = run_model(task, pools, oracle, cfg, [oracle.sids.codes], with_relearn=True)
    return Reference(pools, original, orig, orc, features)


def _n_candidates(task: PreparedTask, positions: np.ndarray) -> np.ndarray:
    """Items a target is ranked among: the catalogue minus the user's (distinct) seen items."""
    users = np.searchsorted(task.seq_offsets, positions, side="right") - 1
    return task.n_items - (positions - task.seq_offsets[users])


def evidence_frame(
    task: PreparedTask, ref: Reference, method: ModelEvidence
) -> pd.DataFrame:
    """One row per evaluation example (columns: `benchmark.evidence`)."""
    p, fm = ref.pools, task.forget_mask
    n_eval, n_fs = len(p.eval_pos), len(p.forget_set_pos)
    pool = np.full(n_eval + n_fs, "forget_set", dtype=object)
    pool[p.retain], pool[p.forget] = "retain_test", "forget_test"
    collateral = np.zeros(n_eval + n_fs, dtype=bool)
    collateral[p.collateral] = True
    positions = p.all_pos
    targets = task.seq_items[positions]

    def fs_only(values: np.ndarray | None) -> np.ndarray:
        out = np.full(n_eval + n_fs, np.nan)
        if values is not None:
            out[n_eval:] = values
        return out

    models = {"": method, "original_": ref.original_evidence, "oracle_": ref.oracle_evidence}
    frame = {
        "pool": pool,
        "collateral": collateral,
        "position": positions.astype(np.int64),
        "target": targets.astype(np.int64),
        "topk": list(method.topk.astype(np.int32)),
        "n_candidates": _n_candidates(task, positions).astype(np.int64),
    }
    for prefix, ev in models.items():
        frame[f"{prefix}rank"] = target_ranks(ev.topk, targets).astype(float)
        frame[f"{prefix}forget_bits"] = slot_bits(forget_slots(ev.topk, fm))
        frame[f"{prefix}latent_rank"] = fs_only(ev.latent)
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
) -> dict[str, dict]:
    """Model-level measurements (not per-example, so not in the evidence; self-reported in a
    submission): retain geometry and code purity."""
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.geometry_items, len(task.retain_items))
    items = np.sort(rng.choice(task.retain_items, size=n, replace=False))
    mask = ~task.forget_mask
    o = ref.original
    purity = unl.sids.code_purity(ref.features, 0, mask) / o.sids.code_purity(ref.features, 0, mask)
    nan = float("nan")
    return {
        "retain_geometry_spearman": {
            "value": retain_geometry(o, unl, items), "ci_low": nan, "ci_high": nan, "n": n,
        },
        "code_purity_ratio": {
            "value": float(purity), "ci_low": nan, "ci_high": nan, "n": int(mask.sum()),
        },
    }  # fmt: skip


def evaluate_unlearning(
    task: PreparedTask, ref: Reference, unl: ServedModel, cfg: EvalConfig
) -> tuple[pd.DataFrame, dict[str, dict], dict[str, float]]:
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
