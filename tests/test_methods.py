"""Unlearning methods: the plugin API, TRACER's reassignment invariants, each baseline's effect on
a tiny model, and that no method reads test targets."""

from __future__ import annotations

import copy
import dataclasses
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import TINY, inputs_for, overrides

from benchmark.recommender.model import Dropout
from benchmark.recommender.sid import SemanticIds
from methods.base import MethodInputs, Unlearned, UnlearningMethod
from methods.common import Examples, grow_level, reference_logprob
from methods.registry import available_methods, get_method
from methods.tracer import (
    forget_only_from,
    forget_only_logprob,
    reassign,
    retain_continuations,
)
from tasks.errors import BenchError

BUILTIN = {"retrain", "retain-ft", "ga", "graddiff", "npo", "simnpo", "suppress", "filter",
           "tracer", "tracer-noreassign", "tracer-nocoherence", "tracer-1.2"}  # fmt: skip


def forget_logprob(model, sids, task) -> float:
    return float(
        reference_logprob(model, torch.tensor(sids.codes), Examples(task, task.d_forget)).mean()
    )


def test_registry_has_every_builtin_and_lists_unknown_names():
    assert BUILTIN <= set(available_methods())
    with pytest.raises(BenchError, match="valid names: .*tracer"):
        get_method("tracr")


def test_third_party_method_plugs_in_through_an_entry_point(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_unlearner.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        import copy
        from methods.base import UnlearningMethod, Unlearned

        @dataclass(frozen=True)
        class Cfg:
            strength: float = 2.0

        class Noop(UnlearningMethod):
            "Returns a copy of the base model."
            name, version, Config = "my-noop", "0.1", Cfg

            def unlearn(self, inputs):
                return Unlearned(copy.deepcopy(inputs.base), inputs.sids)
    """)
    )
    dist = tmp_path / "my_unlearner-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-unlearner\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[tracer_bench.methods]\nmy-noop = my_unlearner:Noop\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = get_method("my-noop")
    assert cls.version == "0.1" and cls().config.strength == 2.0
    from benchmark.app.cli import main

    assert main(["methods"]) == 0
    assert "`my-noop`" in capsys.readouterr().out
    sys.modules.pop("my_unlearner", None)


def test_tracer_reassignment_invariants(toy):
    task, bb = toy
    served, fresh_from = reassign(bb.sids, task.forget_mask, level=0)
    served.validate()  # unique, in range
    f, r = task.forget_mask, ~task.forget_mask
    assert np.array_equal(served.codes[r], bb.sids.codes[r])  # retain SIDs unchanged
    assert not set(served.codes[f, 0]) & set(served.codes[r, 0])  # no shared level-1 prefix
    assert np.array_equal(served.codes[f, 1:], bb.sids.codes[f, 1:])  # deeper codes kept
    assert served.sizes[0] == bb.sids.sizes[0] + len(fresh_from)
    assert np.array_equal(fresh_from[served.codes[f, 0] - bb.sids.sizes[0]], bb.sids.codes[f, 0])
    allowed = retain_continuations(bb.sids.codes, served.sizes, task.forget_mask, task.retain_mask)
    for i in np.flatnonzero(f):  # level-1 continuations allowed = codes retain items use
        assert set(np.flatnonzero(allowed[0][i].numpy())) == set(bb.sids.codes[r, 0])


def test_forget_only_codes_start_where_the_prefix_leaves_every_retain_item():
    codes = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1], [2, 2, 2]])
    forget = np.array([False, False, True, True, True, False])
    allowed = retain_continuations(codes, (3, 3, 3), forget, ~forget)
    start = forget_only_from(codes, allowed, forget)
    # (0,0,1) leaves at its last code, (1,..) at its first, (0,1,1) at its last; retain: none
    assert start.tolist() == [3, 3, 2, 0, 2, 3]
    logits = [torch.log(torch.tensor([[0.5, 0.25, 0.25]] * 2)) for _ in range(3)]
    two = torch.tensor([[0, 0, 1], [1, 0, 0]])
    lp = forget_only_logprob(logits, two, torch.tensor([2, 0]))
    assert torch.allclose(lp, torch.log(torch.tensor([0.25, 0.25 * 0.5 * 0.5])))


def test_tracer_13_pushes_the_original_paths_below_what_12_leaves(toy):
    """The forget-only closing lowers the forget targets' original-SID likelihood further than
    TRACER 1.2 (the same run without it), and 1.2 is 1.3 with it switched off."""
    task, bb = toy
    fast = {**overrides("tracer"), "lr": 5e-3}
    old = get_method("tracer-1.2")(**fast).unlearn(inputs_for(task, bb))
    off = get_method("tracer")(**fast, forget_only_weight=0.0).unlearn(inputs_for(task, bb))
    new = get_method("tracer")(**fast, forget_only_weight=10.0).unlearn(inputs_for(task, bb))
    assert "forget_only" in new.log["last"] and "forget_only" not in old.log["last"]
    a, b = old.model.state_dict(), off.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert forget_logprob(new.model, bb.sids, task) < forget_logprob(old.model, bb.sids, task)


@pytest.mark.parametrize("name", sorted(BUILTIN - {"retrain", "filter", "retain-ft"}))
def test_forgetting_methods_lower_the_forget_likelihood(toy, name):
    task, bb = toy
    out = get_method(name)(**overrides(name), lr=5e-3).unlearn(inputs_for(task, bb))
    before = forget_logprob(bb.model, bb.sids, task)
    if name.startswith("tracer") and out.sids.sizes != bb.sids.sizes:  # served SIDs are fresh
        assert forget_logprob(out.model, out.sids, task) < before
    assert forget_logprob(out.model, bb.sids, task) < before


def test_retain_finetune_and_filter_and_retrain(toy, tmp_path, monkeypatch):
    task, bb = toy
    ft = get_method("retain-ft")(**overrides("retain-ft")).unlearn(inputs_for(task, bb))
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(ft.model.parameters(), bb.model.parameters(), strict=True)
    )
    assert changed
    filt = get_method("filter")().unlearn(inputs_for(task, bb))
    assert np.array_equal(filt.banned, task.forget_mask)
    assert all(
        torch.equal(a, b)
        for a, b in zip(filt.model.parameters(), bb.model.parameters(), strict=True)
    )
    # an empty cache: an oracle is cached by its data, which other tests' tasks may share
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))
    oracle = get_method("retrain")().unlearn(inputs_for(task, bb))
    assert not oracle.log["reused_cached_oracle"]
    assert get_method("retrain")().unlearn(inputs_for(task, bb)).log["reused_cached_oracle"]


@pytest.mark.parametrize("name", sorted(available_methods()))
def test_methods_never_read_test_targets(toy, name):
    """Every registered method (built-ins, retrain and filter included, and any entry-point
    plugin installed) runs on the harness's view of the task: scrambling the test targets changes
    nothing it returns — weights, served SIDs, ban, and the lists it serves."""
    from benchmark.evaluation.probes import ServedModel, served_topk
    from tasks.prepare import method_view

    task, bb = toy
    scrambled_items = task.seq_items.copy()
    rng = np.random.default_rng(0)
    scrambled_items[task.test_pos] = rng.integers(0, task.n_items, size=len(task.test_pos))
    # another content hash: the retrain oracle's cache cannot hand back the first run's model
    scrambled = dataclasses.replace(task, seq_items=scrambled_items, content_hash="0" * 64)
    runs = []
    for t in (task, scrambled):
        view = method_view(t)
        assert len(view.test_pos) == 0 and not view.seq_items.flags.writeable
        inputs = MethodInputs(copy.deepcopy(bb.model), bb.sids, view, TINY, seed=0)
        runs.append(get_method(name)(**overrides(name)).unlearn(inputs))
    a, b = runs
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    assert np.array_equal(a.sids.codes, b.sids.codes)
    assert (a.banned is None) == (b.banned is None)
    if a.banned is not None:
        assert np.array_equal(a.banned, b.banned)
    lists = [served_topk(task, ServedModel(u.model, u.sids, u.banned), task.valid_pos, 5, 8)
             for u in (a, b)]  # fmt: skip
    assert np.array_equal(*lists)


def test_returned_outputs_are_checked(toy):
    from benchmark.app.cell import check_unlearned

    task, bb = toy
    method = get_method("ga")()
    ok = Unlearned(bb.model, bb.sids)
    check_unlearned(method, ok, task, bb.sids)
    twin = bb.sids.codes.copy()
    twin[1] = twin[0]
    cases = {
        # built without SemanticIds.validate, as a plugin's own code could
        "share a SID": Unlearned(bb.model, SemanticIds(twin, bb.sids.sizes)),
        "outside their codebooks": Unlearned(
            bb.model, SemanticIds(bb.sids.codes + 100, bb.sids.sizes)
        ),
        "ban of": Unlearned(bb.model, bb.sids, banned=np.zeros(3, dtype=bool)),
    }
    retain = int(task.retain_items[0])
    moved = bb.sids.codes.copy()
    moved[retain, -1] = moved[:, -1].max() + 1  # a fresh, unique last code for a retain item
    sizes = (*bb.sids.sizes[:-1], int(moved[:, -1].max()) + 1)
    grown = copy.deepcopy(bb.model)
    grow_level(grown, len(sizes) - 1, np.zeros(sizes[-1] - bb.sids.sizes[-1], dtype=np.int64))
    cases["changed retain items' SIDs"] = Unlearned(grown, SemanticIds(moved, sizes))
    for why, unl in cases.items():
        with pytest.raises(BenchError, match=why):
            check_unlearned(method, unl, task, bb.sids)


def test_method_config_overrides_and_hash():
    m = get_method("npo")(steps=3)
    assert m.config.steps == 3 and m.config_hash() != get_method("npo")().config_hash()
    assert isinstance(m, UnlearningMethod)


def test_fresh_tokens_take_the_forget_items_share_of_their_original_code(toy):
    import copy

    from methods.common import grow_level
    from methods.tracer import add_fresh_bias

    task, bb = toy
    served, fresh_from = reassign(bb.sids, task.forget_mask, level=0)
    model = copy.deepcopy(bb.model)
    grow_level(model, 0, fresh_from)
    add_fresh_bias(model, 0, bb.sids.codes, task.forget_mask, fresh_from)
    h = torch.randn(5, model.cfg.d_model)
    with torch.no_grad():
        base, grown = bb.model.logits(h, 0), model.logits(h, 0)
    old = bb.sids.sizes[0]
    assert torch.allclose(grown[:, :old], base)  # original codes keep their logits
    codes = bb.sids.codes[:, 0]
    for j, c in enumerate(fresh_from):
        share = (codes[task.forget_mask] == c).sum() / (codes == c).sum()
        assert torch.allclose(grown[:, old + j], base[:, c] + float(np.log(share)), atol=1e-5)


def test_per_example_values_are_computed_once_per_chunk_of_drawn_examples(toy):
    """`compute` gets whole fixed chunks of example indices, each once, only those a draw
    touches; the values come back in idx's order with the bits of an up-front pass in the same
    chunks, and equal a pass in another batch layout up to rounding."""
    from methods.common import PerExample

    task, bb = toy
    d_f, codes = Examples(task, task.d_forget), torch.tensor(bb.sids.codes)
    asked: list[np.ndarray] = []

    def compute(i):
        asked.append(i)
        return [reference_logprob(bb.model, codes, d_f, i)]

    chunk = 4
    lazy = PerExample(len(d_f), compute, chunk=chunk)
    rng = np.random.default_rng(0)
    drawn = [d_f.sample(rng, 3) for _ in range(3)]
    got = [lazy(idx)[0] for idx in drawn]
    starts = [int(i[0]) for i in asked]
    for i in asked:
        assert np.array_equal(i, np.arange(i[0], min(len(d_f), i[0] + chunk)))
    assert len(starts) == len(set(starts))  # each chunk once
    assert set(starts) == set(chunk * np.unique(np.concatenate(drawn) // chunk))
    assert len(starts) < -(-len(d_f) // chunk)  # undrawn chunks are never computed
    eager = PerExample(len(d_f), lambda i: [reference_logprob(bb.model, codes, d_f, i)], chunk)
    eager(np.arange(len(d_f)))
    full = reference_logprob(bb.model, codes, d_f)
    for idx, values in zip(drawn, got, strict=True):
        assert torch.equal(values, eager(idx)[0])
        assert torch.allclose(values, full[torch.as_tensor(idx)], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["tracer", "npo"])
def test_lazy_reference_values_leave_the_result_unchanged(toy, name, monkeypatch):
    """Computing the reference values when drawn must train the same model as computing every
    example up front: `compute` sees the same chunks of example indices either way, so the same
    batch shapes whatever the CPU's rounding, and the reference model must consume no random
    draw."""
    import methods.baselines
    import methods.tracer
    from methods.common import PerExample

    calls: dict[bool, list[tuple[int, ...]]] = {False: [], True: []}

    def recorded(up_front: bool) -> type[PerExample]:
        class Recorded(PerExample):
            def __init__(self, n, compute):
                def record(i):
                    calls[up_front].append(tuple(i.tolist()))
                    return compute(i)

                super().__init__(n, record, chunk=4)  # several chunks on the toy's D_f
                if up_front:
                    self(np.arange(n))

        return Recorded

    task, bb = toy
    base = copy.deepcopy(bb.model)
    for m in base.modules():  # dropout on, as in the real recipe: training draws random masks
        if isinstance(m, Dropout):
            m.p = 0.1
    inputs = MethodInputs(base, bb.sids, task, TINY, seed=0)
    method = get_method(name)(**overrides(name), lr=5e-3)
    trained = {}
    for up_front in (False, True):
        monkeypatch.setattr(methods.tracer, "PerExample", recorded(up_front))
        monkeypatch.setattr(methods.baselines, "PerExample", recorded(up_front))
        trained[up_front] = method.unlearn(inputs).model.state_dict()
    lazy, eager = trained[False], trained[True]
    assert calls[False] and set(calls[False]) <= set(calls[True])  # the same index sets
    assert len(set(calls[True])) == len(calls[True])
    assert lazy.keys() == eager.keys()
    assert all(torch.equal(lazy[k], eager[k]) for k in lazy)
    before = bb.model.state_dict()
    assert any(not torch.equal(lazy[k], before[k]) for k in before)  # it did train
