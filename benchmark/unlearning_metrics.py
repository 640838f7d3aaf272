"""The unlearning metric suite of DESIGN §5, over its three pools: retain-test users, forget-test
users and the forget set (a seeded sample of D_f contexts). Directions are declared once, in
`benchmark.metrics.METRICS`; every value carries a 95 % bootstrap interval over its examples."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.data import histories, seen_items, to_codes
from benchmark.decoding import Trie, score_all_items
from benchmark.metrics import METRICS, ndcg_at_k, ranks_from_scores, recall_at_k, target_ranks
from benchmark.model import SIDRecommender
from benchmark.sid import SemanticIds
from benchmark.train import recommend
from tasks.prepare import PreparedTask

N_BOOT = 1000
HEADLINE_PARTS = ("forgetting_part", "utility_part", "erasure_score")


def higher_is_better(metric: str) -> bool:
    """Direction of a metric name such as 'fe_latent@10' (declared in benchmark.metrics)."""
    return METRICS[metric.split("@")[0]].higher_is_better


@dataclass
class ServedModel:
    """A model as served: weights, tokenizer and decode-time ban."""

    model: SIDRecommender
    sids: SemanticIds
    banned: np.ndarray | None = None


@dataclass
class Pools:
    user_pos: np.ndarray  # every user's evaluation target position (test, or validation)
    retain_users: np.ndarray  # indices into user_pos
    forget_users: np.ndarray
    collateral_users: np.ndarray  # retain-test users whose item shares a level-1 code with F
    forget_set_pos: np.ndarray  # absolute positions of the forget-set targets


def make_pools(task: PreparedTask, base_sids: SemanticIds, split: str = "test") -> Pools:
    """split="valid" evaluates on validation targets instead (for choosing hyper-parameters)."""
    c1 = base_sids.codes[:, 0]
    shared = np.isin(c1, np.unique(c1[task.forget_mask]))
    pos = task.test_pos if split == "test" else task.valid_pos
    in_f = task.forget_mask[task.seq_items[pos]]
    retain = np.flatnonzero(~in_f)
    return Pools(
        user_pos=pos,
        retain_users=retain,
        forget_users=np.flatnonzero(in_f),
        collateral_users=retain[shared[task.seq_items[pos][retain]]],
        forget_set_pos=task.train_pos[task.forget_set],
    )


@dataclass
class ServedLists:
    test_topk: np.ndarray  # (n_users, Kmax)
    forget_set_topk: np.ndarray  # (n_forget_set, Kmax)


def served_lists(task: PreparedTask, pools: Pools, sm: ServedModel, kmax: int, beam: int):
    allowed = None if sm.banned is None else ~sm.banned

    def rec(pos: np.ndarray) -> np.ndarray:
        codes, sizes = sm.sids.codes, sm.sids.sizes
        return recommend(sm.model, task, codes, sizes, pos, kmax, max(beam, kmax), allowed)

    return ServedLists(rec(pools.user_pos), rec(pools.forget_set_pos))


@torch.no_grad()
def latent_ranks(
    task: PreparedTask,
    model: SIDRecommender,
    codes_sets: list[np.ndarray],
    sizes,
    positions,
    batch_size: int = 32,
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


def forget_slots(topk: np.ndarray, forget_mask: np.ndarray) -> np.ndarray:
    """Which slots of top-K lists (item ids, -1 = empty) hold a forget item."""
    return forget_mask[np.maximum(topk, 0)] & (topk >= 0)


def _boot_idx(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(N_BOOT, n)) if n else np.zeros((N_BOOT, 0), dtype=int)


def _stat(value: float, boots: np.ndarray, n: int) -> dict:
    finite = np.asarray(boots, dtype=float)
    finite = finite[np.isfinite(finite)]
    lo, hi = np.quantile(finite, [0.025, 0.975]) if len(finite) and n else (np.nan, np.nan)
    return {"value": float(value), "ci_low": float(lo), "ci_high": float(hi), "n": int(n)}


def mean_stat(values: np.ndarray, rng: np.random.Generator) -> dict:
    idx = _boot_idx(len(values), rng)
    boots = values[idx].mean(1) if len(values) else np.array([])
    return _stat(values.mean() if len(values) else np.nan, boots, len(values))


def ratio(a: np.ndarray, b: np.ndarray) -> float:
    return float(a.mean() / b.mean()) if len(b) and b.mean() > 0 else float("nan")


def forget_efficacy(unl: np.ndarray, orig: np.ndarray) -> float:
    """1 - recall(unlearned) / recall(original), clipped to [0, 1]."""
    r = ratio(unl, orig)
    return float(np.clip(1 - r, 0, 1)) if np.isfinite(r) else float("nan")


def paired_stat(fn: Callable, a: np.ndarray, b: np.ndarray, rng) -> dict:
    """fn(a, b) with a bootstrap over the shared examples of the paired arrays a and b."""
    idx = _boot_idx(len(a), rng)
    boots = np.array([fn(a[i], b[i]) for i in idx]) if len(a) else np.array([])
    return _stat(fn(a, b), boots, len(a))


def harmonic(forget: float, utility: float) -> float:
    if not (np.isfinite(forget) and np.isfinite(utility)) or forget + utility <= 0:
        return 0.0
    return 2 * forget * utility / (forget + utility)


def headline(fe10: float, fe_latent10: float, ndcg_ratio10: float) -> tuple[float, float, float]:
    """(forgetting part, utility part, erasure score) from FE@10, FE_latent@10 and the retained
    NDCG@10 ratio (DESIGN §5)."""
    f = min(fe10, fe_latent10)
    u = min(1.0, ndcg_ratio10)
    return f, u, harmonic(f, u)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def retain_geometry(orig: ServedModel, unl: ServedModel, items: np.ndarray) -> float:
    """Spearman correlation of retain items' pairwise cosine similarities, original vs
    unlearned (representation = sum of the item's SID token embeddings)."""

    def sims(sm: ServedModel) -> np.ndarray:
        with torch.no_grad():
            v = sm.model.item_vectors(torch.tensor(sm.sids.codes[items]))
            v = torch.nn.functional.normalize(v, dim=-1)
            s = (v @ v.T).cpu().numpy()
        return s[np.triu_indices(len(items), 1)]

    return spearman(sims(orig), sims(unl))


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


@dataclass(frozen=True)
class EvalConfig:
    ks: tuple[int, ...] = (5, 10, 20)
    beam: int = 20
    relearn_steps: int = 30
    relearn_sample: int = 256
    relearn_lr: float = 1e-3
    geometry_items: int = 400
    seed: int = 0
    split: str = "test"  # "valid": validation targets, for choosing hyper-parameters


@dataclass
class Reference:
    """What every method on a (task, seed) is compared with: the original model's lists,
    latent ranks and relearning result (computed once)."""

    pools: Pools
    original: ServedModel
    lists: ServedLists
    latent: np.ndarray
    features: np.ndarray


def make_reference(task, original: ServedModel, features: np.ndarray, cfg: EvalConfig) -> Reference:
    pools = make_pools(task, original.sids, cfg.split)
    lists = served_lists(task, pools, original, max(cfg.ks), cfg.beam)
    latent = latent_ranks(
        task, original.model, [original.sids.codes], original.sids.sizes, pools.forget_set_pos
    )
    return Reference(pools, original, lists, latent, features)


def evaluate_unlearning(
    task: PreparedTask,
    ref: Reference,
    unl: ServedModel,
    cfg: EvalConfig,
    evidence: dict | None = None,
) -> dict[str, dict]:
    """Every metric of DESIGN §5 except cost (added by the caller) as {name: stat}. If given,
    `evidence` is filled with the per-example lists and ranks the ranking metrics come from."""
    rng = np.random.default_rng(cfg.seed)
    p, o = ref.pools, ref.original
    lists = served_lists(task, p, unl, max(cfg.ks), cfg.beam)
    test_items = task.seq_items[p.user_pos]
    fs_items = task.seq_items[p.forget_set_pos]
    r_test_u, r_test_o = (
        target_ranks(lists.test_topk, test_items),
        target_ranks(ref.lists.test_topk, test_items),
    )
    r_fs_u = target_ranks(lists.forget_set_topk, fs_items)
    r_fs_o = target_ranks(ref.lists.forget_set_topk, fs_items)
    out: dict[str, dict] = {}
    for k in cfg.ks:
        for name, fn in (("recall", recall_at_k), ("ndcg", ndcg_at_k)):
            u, o_ = fn(r_test_u, k), fn(r_test_o, k)
            out[f"retained_{name}@{k}"] = mean_stat(u[p.retain_users], rng)
            out[f"retained_{name}_ratio@{k}"] = paired_stat(
                ratio, u[p.retain_users], o_[p.retain_users], rng
            )
            out[f"collateral_{name}@{k}"] = mean_stat(u[p.collateral_users], rng)
            out[f"forget_test_{name}@{k}"] = mean_stat(u[p.forget_users], rng)
            out[f"forget_set_{name}@{k}"] = mean_stat(fn(r_fs_u, k), rng)
        out[f"collateral_ndcg_ratio@{k}"] = paired_stat(
            ratio,
            ndcg_at_k(r_test_u, k)[p.collateral_users],
            ndcg_at_k(r_test_o, k)[p.collateral_users],
            rng,
        )
        out[f"fe@{k}"] = paired_stat(
            forget_efficacy, recall_at_k(r_fs_u, k), recall_at_k(r_fs_o, k), rng
        )
        in_f = forget_slots(lists.test_topk[:, :k], task.forget_mask)
        out[f"ce@{k}"] = mean_stat(in_f.mean(1), rng)
    # latent knowledge: best of original and served SIDs, no bans
    codes_sets = (
        [o.sids.codes]
        if np.array_equal(o.sids.codes, unl.sids.codes)
        else [o.sids.codes, unl.sids.codes]
    )
    lat = latent_ranks(task, unl.model, codes_sets, unl.sids.sizes, p.forget_set_pos)
    for k in cfg.ks:
        out[f"latent_forget_recall@{k}"] = mean_stat(recall_at_k(lat, k), rng)
        out[f"fe_latent@{k}"] = paired_stat(
            forget_efficacy, recall_at_k(lat, k), recall_at_k(ref.latent, k), rng
        )
    out["latent_forget_mean_rank"] = mean_stat(lat + 1.0, rng)
    # relearning: the attacker fine-tunes the weights and decodes without the service's bans
    relearned = relearn(task, unl, cfg.relearn_steps, cfg.relearn_sample, cfg.relearn_lr, cfg.seed)
    rl = served_lists(task, p, ServedModel(relearned, unl.sids), max(cfg.ks), cfg.beam)
    r_rl = target_ranks(rl.forget_set_topk, fs_items)
    if evidence is not None:
        evidence.update(
            pools=p,
            test_items=test_items,
            forget_set_items=fs_items,
            test_topk=lists.test_topk,
            test_rank=r_test_u,
            original_test_topk=ref.lists.test_topk,
            original_test_rank=r_test_o,
            forget_set_topk=lists.forget_set_topk,
            forget_set_rank=r_fs_u,
            original_forget_set_topk=ref.lists.forget_set_topk,
            original_forget_set_rank=r_fs_o,
            latent_rank=lat,
            original_latent_rank=ref.latent,
            relearn_rank=r_rl,
            forget_mask=task.forget_mask,
        )
    for k in cfg.ks:
        out[f"relearn_forget_recall@{k}"] = mean_stat(recall_at_k(r_rl, k), rng)
    # code coherence
    items = np.sort(
        np.random.default_rng(cfg.seed).choice(
            task.retain_items, size=min(cfg.geometry_items, len(task.retain_items)), replace=False
        )
    )
    out["retain_geometry_spearman"] = _stat(
        retain_geometry(o, unl, items), np.array([]), len(items)
    )
    mask = ~task.forget_mask
    purity = unl.sids.code_purity(ref.features, 0, mask) / o.sids.code_purity(ref.features, 0, mask)
    out["code_purity_ratio"] = _stat(purity, np.array([]), int(mask.sum()))
    # headline: harmonic mean of min(FE@10, FE_latent@10) and min(1, retained NDCG@10 ratio)
    boot_fs, boot_rt = _boot_idx(len(r_fs_u), rng), _boot_idx(len(p.retain_users), rng)
    rec_u, rec_o, lat_u = recall_at_k(r_fs_u, 10), recall_at_k(r_fs_o, 10), recall_at_k(lat, 10)
    lat_o = recall_at_k(ref.latent, 10)
    nd_u = ndcg_at_k(r_test_u, 10)[p.retain_users]
    nd_o = ndcg_at_k(r_test_o, 10)[p.retain_users]

    def parts(i_fs, i_rt):
        return headline(
            forget_efficacy(rec_u[i_fs], rec_o[i_fs]),
            forget_efficacy(lat_u[i_fs], lat_o[i_fs]),
            ratio(nd_u[i_rt], nd_o[i_rt]),
        )

    full = parts(np.arange(len(rec_u)), np.arange(len(nd_u)))
    boots = np.array([parts(a, b) for a, b in zip(boot_fs, boot_rt, strict=True)])
    for j, name in enumerate(HEADLINE_PARTS):
        out[name] = _stat(full[j], boots[:, j], len(rec_u))
    return out
