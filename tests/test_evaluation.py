"""Evaluation on a tiny model (benchmark.evaluation.probes): the evidence frame it writes, the
oracle's own tokenizer, and what the protocol 2.0 metrics make of hiding and of TRACER."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import SMALL, inputs_for, overrides

from benchmark.evaluation.probes import (
    ServedModel,
    evaluate_unlearning,
    latent_ranks,
    make_reference,
)
from benchmark.metrics.bootstrap import metric_stats
from benchmark.metrics.evidence import COLUMNS, Evidence
from benchmark.metrics.ranking import ranks_from_scores
from benchmark.metrics.registry import compute, evidence_metric_names
from benchmark.metrics.stat import MetricStat
from benchmark.recommender.data import histories, seen_items, to_codes
from benchmark.recommender.decoding import Trie, score_all_items
from benchmark.recommender.features import item_features
from methods.common import grow_level
from methods.registry import get_method
from methods.tracer import reassign


def test_latent_ranks_take_the_better_of_two_sids(toy):
    task, bb = toy
    pos = task.train_pos[task.forget_set[:6]]
    one = latent_ranks(task, bb.model, [bb.sids.codes], bb.sids.sizes, pos)
    served, _ = reassign(bb.sids, task.forget_mask, 0)
    model = copy.deepcopy(bb.model)
    grow_level(model, 0, np.unique(bb.sids.codes[task.forget_mask, 0]))
    # fresh rows start as copies of their originals: each forget item scores the same under
    # both SIDs, so the better of the two is the original ranking
    both = latent_ranks(task, model, [bb.sids.codes, served.codes], served.sizes, pos)
    assert np.array_equal(both, one)
    # a served SID that scores higher wins: push the fresh level-1 rows' output bias up
    with torch_no_grad():
        model.codes[0].weight[bb.sids.sizes[0] :] *= 0  # change the fresh tokens only
    changed = latent_ranks(task, model, [bb.sids.codes, served.codes], served.sizes, pos)
    # brute force: every item scored exhaustively under each SID set (histories encoded as
    # served), the better of the two per item, the target ranked among them
    hist, lengths = histories(task, pos)
    h = to_codes(hist, torch.tensor(served.codes))
    with torch_no_grad():
        scores = torch.stack(
            [
                score_all_items(model, h, torch.as_tensor(lengths), Trie(c, served.sizes))
                for c in (bb.sids.codes, served.codes)
            ]
        )
    per_set = [s.clone() for s in scores]
    best = scores.amax(0)
    for s in (best, *per_set):
        s[seen_items(task, pos)] = float("-inf")
    targets = task.seq_items[pos]
    assert np.array_equal(changed, ranks_from_scores(best.numpy(), targets))
    # and the two assignments alone rank differently, so taking the better one is exercised
    alone = [ranks_from_scores(s.numpy(), targets) for s in per_set]
    assert not np.array_equal(*alone)


def torch_no_grad():
    import torch

    return torch.no_grad()


@pytest.fixture(scope="module")
def reference(toy):
    task, bb = toy
    inputs = inputs_for(task, bb)
    oracle = get_method("retrain")().unlearn(inputs)
    features = item_features(task, inputs.backbone.features)
    ref = make_reference(
        task, ServedModel(bb.model, bb.sids), ServedModel(oracle.model, oracle.sids), features,
        SMALL,
    )  # fmt: skip
    return ref, oracle


def test_the_oracle_has_its_own_retain_only_tokenizer(toy, reference):
    task, bb = toy
    _, oracle = reference
    from benchmark.recommender.features import FeatureConfig

    cfg = inputs_for(task, bb).backbone.features
    if cfg.collab_dim == 0:
        cfg = FeatureConfig(text=cfg.text, collab_dim=4)
    full, retain = item_features(task, cfg), item_features(task, cfg, retain_only=True)
    assert not np.allclose(full, retain)  # the collaborative part saw no forget interaction
    assert oracle.sids.n_items == task.n_items  # forget items still have (content) SIDs
    assert len({tuple(r) for r in oracle.sids.codes}) == task.n_items


def test_evidence_frame_holds_every_pool_and_the_references(toy, reference):
    task, bb = toy
    ref, _ = reference
    unl = get_method("ga")(**overrides("ga")).unlearn(inputs_for(task, bb))
    frame, measured, seconds = evaluate_unlearning(
        task, ref, ServedModel(unl.model, unl.sids), SMALL
    )
    assert list(frame.columns) == sorted(frame.columns, key=list(COLUMNS).index)
    counts = frame["pool"].value_counts()
    assert counts["retain_test"] + counts.get("forget_test", 0) == len(task.test_pos)
    assert counts["forget_set"] == len(task.forget_set)
    fs = frame["pool"] == "forget_set"
    assert frame.loc[fs, ["latent_rank", "oracle_latent_rank", "relearn_rank"]].notna().all().all()
    assert frame.loc[~fs, "latent_rank"].isna().all()
    assert set(seconds) >= {"decode", "latent", "relearn"}
    assert set(measured) == {"retain_geometry_spearman", "code_purity_ratio"}


def test_filter_hides_but_the_oracle_anchored_metrics_see_through(toy, reference):
    task, bb = toy
    ref, _ = reference
    unl = get_method("filter")().unlearn(inputs_for(task, bb))
    frame, measured, _ = evaluate_unlearning(
        task, ref, ServedModel(unl.model, unl.sids, unl.banned), SMALL
    )
    ev = Evidence.from_frame(frame)
    assert compute(ev, "ce@5") == 0.0 and compute(ev, "forget_set_recall@10") == 0.0
    assert compute(ev, "served_forgetting") == 1.0
    assert compute(ev, "oracle_match") == 0.0  # the weights are the original's
    assert compute(ev, "erasure_score") == 0.0  # hiding scores nothing
    assert measured["retain_geometry_spearman"].value == pytest.approx(1.0)
    stats = metric_stats(ev, evidence_metric_names((1, 5, 10)), n_boot=50)
    for stat in stats.values():
        assert isinstance(stat, MetricStat) and type(stat.n) is int and stat.n > 0


def test_tracer_end_to_end_changes_the_served_tokenizer(toy, reference):
    task, bb = toy
    ref, _ = reference
    unl = get_method("tracer")(**overrides("tracer")).unlearn(inputs_for(task, bb))
    frame, _, _ = evaluate_unlearning(task, ref, ServedModel(unl.model, unl.sids), SMALL)
    ev = Evidence.from_frame(frame)
    assert unl.sids.sizes[0] > bb.sids.sizes[0]
    f, u = compute(ev, "forgetting_part"), compute(ev, "utility_part")
    assert 0.0 <= f <= 1.0 and 0.0 <= u <= 1.0
    assert f == min(compute(ev, "served_forgetting"), compute(ev, "oracle_match"))


def test_reference_evidence_is_cached_per_model_and_read_back_unchanged(toy, monkeypatch):
    import dataclasses

    import benchmark.evaluation.reference as cache
    from benchmark.app.cell import CellContext
    from tasks.sources.common import cache_root

    task, bb = toy
    backbone = inputs_for(task, bb).backbone
    computed: list[str] = []  # which model's evidence was computed
    real = cache.run_model

    def counting(*args):  # with_relearn: the oracle's; a ban: the banned original's
        computed.append("oracle" if args[5] else "original" if args[2].banned is None else "ban")
        return real(*args)

    monkeypatch.setattr(cache, "run_model", counting)
    cfg = dataclasses.replace(SMALL, latent_sample=7)  # a key no other test writes

    def reference(c=cfg, **kw):
        return CellContext(task, 0, backbone, c, progress=False, **kw).reference()

    first = reference()
    assert computed == ["original", "ban", "oracle"]
    again = reference(oracle_first=True)
    assert computed == ["original", "ban", "oracle"]  # all read back
    for a, b in [(first.original_evidence, again.original_evidence),
                 (first.oracle_evidence, again.oracle_evidence),
                 (first.banned_evidence, again.banned_evidence)]:  # fmt: skip
        assert np.array_equal(a.topk, b.topk) and a.topk.dtype == b.topk.dtype
        assert np.array_equal(a.latent, b.latent, equal_nan=True)
    assert first.original_evidence.relearned is None
    assert first.banned_evidence.relearned is None and len(first.banned_evidence.latent) == 0
    assert not np.isin(first.banned_evidence.topk, np.flatnonzero(task.forget_mask)).any()
    assert np.array_equal(first.oracle_evidence.relearned, again.oracle_evidence.relearned)
    reference(dataclasses.replace(cfg, beam=9), oracle_first=True)  # another key
    assert computed[3:] == ["oracle", "original", "ban"]
    # a damaged entry is recomputed, not trusted, and the others still read
    damaged = [p for p in (cache_root() / "evidence").rglob("original-*.safetensors")]
    for p in damaged:
        p.write_bytes(b"not a safetensors file")
    reference()
    assert computed[6:] == ["original"]
    reference(reuse_reference=False)  # validate --recompute-reference, verify
    assert computed[7:] == ["original", "ban", "oracle"]
