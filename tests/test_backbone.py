"""The SID recommender: decoding correctness, training, checkpoints and the model cache."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY, random_codes, toy_rows, toy_task_file, write_atomic

from benchmark.recommender.backbone import (
    cpu_name,
    get_backbone,
    train_backbone,
)
from benchmark.recommender.data import histories, to_codes
from benchmark.recommender.decoding import (
    DecodeState,
    Trie,
    beam_search,
    level_logprobs,
    score_all_items,
)
from benchmark.recommender.model import (
    ModelConfig,
    SIDRecommender,
    load_checkpoint,
    save_checkpoint,
)
from benchmark.recommender.train import TrainConfig, recommend
from tasks import load_task_file, prepare_task


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    sizes = (5, 4, 3)
    model = SIDRecommender(
        ModelConfig(
            sizes=sizes,
            d_model=32,
            n_heads=2,
            n_enc_layers=1,
            n_dec_layers=2,
            d_ff=64,
            dropout=0.0,
            max_history=6,
        )
    )
    for p in model.parameters():  # a sharper, non-uniform distribution than the init
        p.data.normal_(0, 0.5)
    model.eval()
    codes = random_codes(40, sizes)
    hist = torch.from_numpy(codes[np.random.default_rng(1).integers(0, 40, (7, 6))])
    lengths = torch.tensor([6, 5, 1, 3, 6, 2, 4])
    return model, sizes, codes, hist, lengths


def test_wide_beam_equals_exhaustive_ranking(tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    trie = Trie(codes, sizes)
    scores = score_all_items(model, hist, lengths, trie)
    items, beam_scores = beam_search(model, hist, lengths, trie, k=10, beam=40)
    exact = torch.topk(scores, 10, dim=1)
    assert torch.equal(items, exact.indices)
    assert torch.allclose(beam_scores, exact.values, atol=1e-5)


@pytest.mark.parametrize("item", [17, 0, 39])
def test_exhaustive_scores_are_teacher_forced_likelihoods(tiny_model, item):
    model, sizes, codes, hist, lengths = tiny_model
    trie = Trie(codes, sizes)
    scores = score_all_items(model, hist, lengths, trie)
    per_level = level_logprobs(model, hist, lengths, trie)
    state = DecodeState.start(model, hist, lengths)
    total = torch.zeros(len(hist))
    tokens = None
    for lv in range(len(sizes)):
        logp = state.step(tokens, lv)[:, 0]
        assert torch.allclose(per_level[:, item, lv], logp[:, codes[item, lv]], atol=1e-5)
        total += logp[:, codes[item, lv]]
        tokens = torch.full((len(hist), 1), int(codes[item, lv]))
    assert torch.allclose(scores[:, item], total, atol=1e-5)
    # an item left out of the trie scores -inf at every level
    without = Trie(codes, sizes, np.arange(len(codes)) != item)
    partial = level_logprobs(model, hist, lengths, without)
    assert torch.isneginf(partial[:, item]).all()


def test_training_pass_matches_incremental_decoding(tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    target = torch.from_numpy(codes[[3, 9, 21, 30, 5, 7, 11]])
    full = torch.full((7,), 6)
    logits = model(hist, full, target[:, None, :].expand(-1, 6, -1).contiguous())
    state = DecodeState.start(model, hist, full)
    tokens = None
    for lv in range(len(sizes)):
        logp = state.step(tokens, lv)[:, 0]
        assert torch.allclose(torch.log_softmax(logits[lv][:, -1], -1), logp, atol=1e-5)
        tokens = target[:, lv : lv + 1]


def test_training_pass_on_kept_positions_equals_the_full_pass(tiny_model):
    """The decoder run on kept positions only (padding, targets outside the loss) gives the
    full pass's logits there, in row-major order, and does not read the other positions."""
    model, sizes, codes, hist, lengths = tiny_model
    rng = np.random.default_rng(2)
    target = torch.from_numpy(codes[rng.integers(0, 40, (7, 6))])
    keep = torch.from_numpy(rng.random((7, 6)) < 0.6)
    keep[0] = False  # a sequence with nothing kept
    full = model(hist, lengths, target)
    scrambled = target.clone()
    scrambled[~keep] = torch.from_numpy(codes[rng.integers(0, 40, int((~keep).sum()))])
    kept = model(hist, lengths, scrambled, keep=keep)
    for lv in range(len(sizes)):
        assert kept[lv].shape == (int(keep.sum()), sizes[lv])
        assert torch.allclose(kept[lv], full[lv][keep], atol=1e-5)


def test_decoding_never_returns_invalid_or_banned_items(tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    allowed = np.ones(len(codes), bool)
    allowed[::3] = False
    items, _ = beam_search(model, hist, lengths, Trie(codes, sizes, allowed), k=5, beam=5)
    assert (items >= 0).all() and allowed[items.numpy()].all()
    few = np.zeros(len(codes), bool)
    few[[2, 8]] = True  # fewer reachable items than k: the rest is -1
    items, scores = beam_search(model, hist, lengths, Trie(codes, sizes, few), k=4, beam=4)
    assert set(items[:, :2].flatten().tolist()) <= {2, 8} and (items[:, 2:] == -1).all()
    assert torch.isinf(scores[:, 2:]).all()


def test_seen_items_are_excluded(tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    trie = Trie(codes, sizes)
    top, _ = beam_search(model, hist, lengths, trie, k=3, beam=40)
    seen = torch.zeros(len(hist), len(codes), dtype=torch.bool)
    seen[torch.arange(len(hist)), top[:, 0]] = True
    again, _ = beam_search(model, hist, lengths, trie, k=3, beam=40, seen=seen)
    assert torch.equal(again[:, :2], top[:, 1:])


def test_excluding_seen_items_is_decoding_over_each_users_unseen_items(tiny_model):
    """A narrow beam must not spend its width on prefixes under which every item is seen: with
    `seen`, beam search equals beam search over a trie of the user's unseen items only."""
    model, sizes, codes, hist, lengths = tiny_model
    trie = Trie(codes, sizes)
    best = score_all_items(model, hist, lengths, trie).topk(12, dim=1).indices
    seen = torch.zeros(len(hist), len(codes), dtype=torch.bool)
    for b in range(len(hist)):  # the user's favourite second-level prefixes, all seen
        favourite = {tuple(codes[i, :2]) for i in best[b].tolist()}
        seen[b] = torch.as_tensor([tuple(c[:2]) in favourite for c in codes])
    items, scores = beam_search(model, hist, lengths, trie, k=3, beam=3, seen=seen)
    for b in range(len(hist)):
        own = Trie(codes, sizes, allowed=~seen[b].numpy())
        want, want_scores = beam_search(model, hist[b : b + 1], lengths[b : b + 1], own, 3, 3)
        assert torch.equal(items[b], want[0])
        assert torch.allclose(scores[b], want_scores[0], atol=1e-5)


def test_checkpoint_round_trip(tmp_path, tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    save_checkpoint(model, tmp_path / "ckpt", extra={"note": "x"})
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["note"] == "x" and loaded.cfg == model.cfg
    trie = Trie(codes, sizes)
    assert torch.equal(
        score_all_items(model, hist, lengths, trie), score_all_items(loaded, hist, lengths, trie)
    )


def _toy_task(tmp_path):
    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    return prepare_task(load_task_file(toy_task_file(tmp_path, data)))


def test_backbone_trains_deterministically_and_is_cached(tmp_path, monkeypatch):
    task = _toy_task(tmp_path)
    first, reused = get_backbone(task, TINY, seed=3, progress=False)
    assert not reused and first.sids.codes.shape[0] == task.n_items
    first.sids.validate()
    losses = [e["loss"] for e in first.log["epochs"]]
    assert losses[-1] < losses[0]  # it learns

    import benchmark.recommender.backbone as bb

    with monkeypatch.context() as patch:  # undo() would also undo the isolated cache
        patch.setattr(bb, "train_model", lambda *a, **k: pytest.fail("retrained"))
        again, reused = get_backbone(task, TINY, seed=3, progress=False)
    assert reused and again.checkpoint_hash == first.checkpoint_hash

    import shutil

    shutil.rmtree(first.folder)  # same seed, from scratch: bit-identical weights on CPU
    third, reused = get_backbone(task, TINY, seed=3, progress=False)
    assert not reused and third.checkpoint_hash == first.checkpoint_hash
    other, _ = get_backbone(task, TINY, seed=4, progress=False)
    assert other.checkpoint_hash != first.checkpoint_hash


def test_every_concept_on_the_same_data_shares_one_base_model(tmp_path, monkeypatch):
    """The base model is keyed by the data, preprocessing and split, not the concept: a second
    concept's task reuses the first's model and features; its oracle stays its own."""
    from benchmark.recommender.backbone import cached_sid_model, model_dir
    from benchmark.recommender.features import features_path
    from tasks.prepare import method_view

    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))  # other tests share data
    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    for sub in "abcd":
        (tmp_path / sub).mkdir()
    scary = prepare_task(load_task_file(toy_task_file(tmp_path / "a", data)))
    comedy = prepare_task(
        load_task_file(toy_task_file(tmp_path / "b", data, name='"toy-comedy"', label='"Comedy"'))
    )
    assert not np.array_equal(scary.forget_mask, comedy.forget_mask)
    assert scary.content_hash != comedy.content_hash and scary.base_hash == comedy.base_hash
    assert method_view(comedy).base_hash == comedy.base_hash
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        first, reused = get_backbone(scary, TINY, seed=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert not reused
    built = json.loads((first.folder / "config.json").read_text())["built_with"]
    assert built == {"threads": 1, "torch": torch.__version__, "cpu": cpu_name()}
    assert built["cpu"]  # bit for bit only at one thread count, on one kind of CPU

    import benchmark.recommender.backbone as bb

    with monkeypatch.context() as patch:
        patch.setattr(bb, "train_model", lambda *a, **k: pytest.fail("retrained"))
        second, reused = get_backbone(comedy, TINY, seed=0, progress=False)
    assert reused and second.folder == first.folder
    assert second.checkpoint_hash == first.checkpoint_hash
    np.testing.assert_array_equal(second.sids.codes, first.sids.codes)
    assert features_path(comedy, TINY.features) == features_path(scary, TINY.features)
    assert features_path(comedy, TINY.features, True) != features_path(scary, TINY.features, True)
    assert model_dir("oracles", comedy, TINY, 0) != model_dir("oracles", scary, TINY, 0)
    for task, trained_before in [(scary, False), (comedy, False), (comedy, True)]:
        ok = ~task.forget_mask[task.seq_items]
        *_, reused = cached_sid_model("oracles", task, TINY, 0, ok, progress=False)
        assert reused == trained_before

    # other data, or the same data preprocessed or split otherwise: a model of its own
    shorter = prepare_task(load_task_file(toy_task_file(tmp_path / "c", data, max_history="3")))
    assert shorter.base_hash != scary.base_hash
    other = write_atomic(tmp_path / "other", *toy_rows(n_users=31, n_items=12, per_user=9))
    assert prepare_task(load_task_file(toy_task_file(tmp_path / "d", other))).base_hash not in (
        scary.base_hash, shorter.base_hash)  # fmt: skip


def test_prefix_states_and_shared_windows_decode_bit_for_bit_as_before(tmp_path, monkeypatch):
    """Decoding reads each prefix's self-attention part from a per-trie table and encodes a
    user's histories of one window once: the same top-K lists and latent ranks as one
    self-attention cache per hypothesis and one encoder pass per history, and the same whether
    the position-wise work runs in blocks of one user or in one pass."""
    import benchmark.evaluation.probes as probes_mod
    import benchmark.recommender.decoding as decoding_mod
    import benchmark.recommender.train as train_mod
    from benchmark.evaluation.probes import latent_ranks

    task = _toy_task(tmp_path)
    bb, _ = get_backbone(task, TINY, seed=0, progress=False)
    positions = np.concatenate([task.test_pos, task.train_pos])
    codes, sizes = bb.sids.codes, bb.sids.sizes
    assert len(train_mod.shared_windows(task, positions, 8)) < len(positions) / 8  # shared

    def decode():
        top = recommend(bb.model, task, codes, sizes, positions, k=5, beam=8, batch_size=8)
        return top, latent_ranks(task, bb.model, [codes], sizes, task.train_pos[:20])

    with monkeypatch.context() as patch:
        patch.setattr(decoding_mod, "ROWS_PER_BLOCK", 3)  # one window, one user per block
        new = decode()
    with monkeypatch.context() as patch:
        patch.setattr(decoding_mod, "ROWS_PER_BLOCK", 10**9)
        for mod in (decoding_mod, train_mod, probes_mod):  # every module that computes them
            patch.setattr(mod, "prefix_states", lambda model, paths: None)
        patch.setattr(train_mod, "shared_windows", lambda t, pos, b: [
            (np.array([i]), np.array([i]), np.array([0])) for i in range(len(pos))
        ])  # fmt: skip
        old = decode()
    np.testing.assert_array_equal(new[0], old[0])
    np.testing.assert_array_equal(new[1], old[1])


def test_each_seed_draws_its_own_tokenizer_unless_the_config_fixes_one(tmp_path):
    task = _toy_task(tmp_path)
    cfg = replace(TINY, train=replace(TINY.train, max_epochs=1))
    drawn = {s: train_backbone(task, cfg, s, progress=False)[1] for s in (3, 4)}
    assert [drawn[s].config.seed for s in (3, 4)] == [3, 4]
    assert not np.array_equal(drawn[3].codes, drawn[4].codes)
    fixed_cfg = replace(cfg, sid=replace(cfg.sid, seed=3))
    fixed = {s: train_backbone(task, fixed_cfg, s, progress=False)[1] for s in (3, 4)}
    assert [fixed[s].config.seed for s in (3, 4)] == [3, 3]
    assert np.array_equal(fixed[4].codes, drawn[3].codes)


def test_training_learns_a_deterministic_sequence(tmp_path):
    """Every user walks the same cycle 1 -> 2 -> ... -> 12: the next item is predictable."""
    inter = [f"{u}\t{(u + k) % 12 + 1}\t4\t{100 + k}" for u in range(1, 41) for k in range(12)]
    _, items = toy_rows(n_items=12)
    data = write_atomic(tmp_path / "cyc", inter, items)
    task = prepare_task(load_task_file(toy_task_file(tmp_path, data)))
    cfg = replace(TINY, train=TrainConfig(max_epochs=25, batch_size=8, lr=1e-2, patience=25))
    bb, _ = get_backbone(task, cfg, seed=0, progress=False)
    # every test target (5 per user) from everything before it; a beam as wide as the catalogue
    top = recommend(bb.model, task, bb.sids.codes, bb.sids.sizes, task.test_pos, k=1, beam=12)
    assert (top[:, 0] == task.test_items).mean() > 0.9


def test_histories_are_right_padded_recent_items(tmp_path):
    task = _toy_task(tmp_path)
    pos = task.test_pos[:3]
    hist, lengths = histories(task, pos)
    for row, p, n in zip(hist, pos, lengths, strict=True):
        assert (row[:n] == task.seq_items[p - n : p]).all() and (row[n:] == -1).all()
    codes = torch.from_numpy(random_codes(task.n_items, (4, 4, 4)))
    assert (to_codes(hist, codes)[hist < 0] == 0).all()


def test_single_target_decoding_matches_the_training_pass(tiny_model):
    model, sizes, codes, hist, lengths = tiny_model
    target = torch.from_numpy(codes[[3, 9, 21, 30, 5, 7, 11]])
    full = torch.full((7,), 6)
    logits = model(hist, full, target[:, None, :].expand(-1, 6, -1).contiguous())
    memory, mask = model.encode_histories(hist, full)
    single = model.decode_targets(memory, mask, target)
    for lv in range(len(sizes)):
        assert torch.allclose(logits[lv][:, -1], single[lv], atol=1e-5)


def test_epoch_selection_is_not_fooled_by_validation_noise():
    """A dip within noise does not count against training and the latest epoch level with the
    best is kept (the most annealed); only significant drops count toward stopping."""
    from benchmark.recommender.train import EpochSelector

    rng = np.random.default_rng(0)
    users = rng.random(900)  # per-user NDCG of the best epoch
    sel = EpochSelector(patience=2, z=2.0)
    assert sel.update(1, users * 0.5)  # the first epoch is kept
    assert sel.update(2, users)  # a new best is kept
    # below the best's mean but within noise: kept, being the later epoch
    dip = users + rng.normal(0, 0.01, users.size) - 0.0003
    assert dip.mean() < users.mean() and sel.update(3, dip)
    assert (sel.best_epoch, sel.kept_epoch, sel.stop) == (2, 3, False)
    assert not sel.update(4, users - 0.05) and not sel.stop  # significantly worse: not kept
    assert not sel.update(5, users - 0.05) and sel.stop  # twice in a row: stop
    assert (sel.best_epoch, sel.kept_epoch) == (2, 3)


def test_training_reports_epochs_loss_and_validation(tmp_path):
    """The status line the runner's progress bar shows while a model trains."""
    task = _toy_task(tmp_path)
    lines: list[str] = []
    get_backbone(task, TINY, seed=5, progress=False, report=lines.append)
    assert lines[0] == "semantic IDs"
    assert any(x.startswith("epoch 1/3 loss ") and "valid ndcg@10" not in x for x in lines)
    last = lines[-1]
    assert last.startswith("epoch 3/3 loss ") and "| valid ndcg@10 " in last and "(best " in last


def test_dropout_drops_p_and_keeps_the_mean():
    from benchmark.recommender.model import Dropout

    drop = Dropout(0.25)
    x = torch.ones(200_000)
    torch.manual_seed(0)
    y = drop.train()(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.01
    assert torch.allclose(y.unique(), torch.tensor([0.0, 4 / 3]))
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded
    assert torch.equal(drop.eval()(x), x)
