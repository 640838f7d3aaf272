"""The DESIGN §5 metric suite on hand-made cases and on a tiny end-to-end run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_methods import inputs_for, overrides, toy  # noqa: F401  (fixture)

from benchmark.unlearning_metrics import (
    EvalConfig,
    ServedModel,
    evaluate_unlearning,
    forget_efficacy,
    harmonic,
    higher_is_better,
    latent_ranks,
    make_reference,
    mean_stat,
    paired_stat,
    ratio,
    spearman,
)
from methods.registry import get_method
from methods.tracer import reassign

SMALL = EvalConfig(ks=(1, 5, 10), beam=8, relearn_steps=3, relearn_sample=16, geometry_items=10)


def test_forget_efficacy_by_hand():
    orig = np.array([1.0, 1.0, 0.0, 0.0])
    assert forget_efficacy(np.array([1.0, 0, 0, 0]), orig) == 0.5
    assert forget_efficacy(np.array([1.0, 1, 1, 0]), orig) == 0.0  # clipped at 0
    assert forget_efficacy(np.zeros(4), orig) == 1.0
    assert math.isnan(forget_efficacy(orig, np.zeros(4)))  # nothing to forget


def test_headline_parts_by_hand():
    assert harmonic(0.5, 1.0) == pytest.approx(2 / 3)
    assert harmonic(0.0, 1.0) == 0.0 and harmonic(1.0, 0.0) == 0.0
    assert ratio(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == 1.0
    assert spearman(np.array([1.0, 2, 3]), np.array([10.0, 20, 30])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)


def test_intervals_and_directions():
    rng = np.random.default_rng(0)
    s = mean_stat(np.r_[np.ones(20), np.zeros(80)], rng)
    assert s["ci_low"] < s["value"] == 0.2 < s["ci_high"]
    p = paired_stat(
        forget_efficacy, np.r_[np.ones(10), np.zeros(90)], np.r_[np.ones(40), np.zeros(60)], rng
    )
    assert p["value"] == pytest.approx(0.75) and p["ci_low"] <= 0.75 <= p["ci_high"]
    assert higher_is_better("erasure_score") and higher_is_better("fe_latent@10")
    assert not higher_is_better("ce@10") and not higher_is_better("latent_forget_recall@5")


def test_latent_ranks_take_the_better_of_two_sids(toy):  # noqa: F811
    task, bb = toy
    pos = task.train_pos[task.forget_set[:6]]
    one = latent_ranks(task, bb.model, [bb.sids.codes], bb.sids.sizes, pos)
    served, _ = reassign(bb.sids, task.forget_mask, 0)
    import copy

    from methods.common import grow_level

    model = copy.deepcopy(bb.model)
    grow_level(model, 0, np.unique(bb.sids.codes[task.forget_mask, 0]))
    both = latent_ranks(task, model, [bb.sids.codes, served.codes], served.sizes, pos)
    assert np.isfinite(one).all() and np.isfinite(both).all()
    assert ((both >= 0) & (both < task.n_items)).all()
    # the best over two identical assignments is the assignment itself
    twice = latent_ranks(task, bb.model, [bb.sids.codes, bb.sids.codes], bb.sids.sizes, pos)
    assert np.array_equal(twice, one)


def original_reference(task, bb):
    from benchmark.features import item_features

    features = item_features(task, inputs_for(task, bb).backbone.features)
    return make_reference(task, ServedModel(bb.model, bb.sids), features, SMALL)


def test_filter_hides_but_the_latent_metrics_see_through(toy):  # noqa: F811
    task, bb = toy
    ref = original_reference(task, bb)
    unl = get_method("filter")().unlearn(inputs_for(task, bb))
    m = evaluate_unlearning(task, ref, ServedModel(unl.model, unl.sids, unl.banned), SMALL)
    assert m["ce@5"]["value"] == 0.0 and m["forget_set_recall@5"]["value"] == 0.0
    assert m["fe@5"]["value"] == 1.0
    orig_latent = (ref.latent < 5).mean()
    assert m["latent_forget_recall@5"]["value"] == pytest.approx(orig_latent)
    assert m["fe_latent@5"]["value"] == 0.0
    assert m["erasure_score"]["value"] == 0.0  # hiding scores nothing
    assert m["retain_geometry_spearman"]["value"] == pytest.approx(1.0)
    assert m["code_purity_ratio"]["value"] == pytest.approx(1.0)
    for name, stat in m.items():
        assert set(stat) == {"value", "ci_low", "ci_high", "n"}
        assert isinstance(higher_is_better(name), bool)  # every metric has a declared direction


def test_tracer_end_to_end_changes_the_served_tokenizer(toy):  # noqa: F811
    task, bb = toy
    ref = original_reference(task, bb)
    unl = get_method("tracer")(**overrides("tracer")).unlearn(inputs_for(task, bb))
    m = evaluate_unlearning(task, ref, ServedModel(unl.model, unl.sids, unl.banned), SMALL)
    assert unl.sids.sizes[0] > bb.sids.sizes[0]
    assert 0.0 <= m["erasure_score"]["value"] <= 1.0
    assert m["forgetting_part"]["value"] <= min(m["fe@10"]["value"] if "fe@10" in m else 1, 1)
