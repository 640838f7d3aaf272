"""A task's base recipe: [backbone.<part>] tables in the task file, and the batching options
(bucketed, trimmed batches) that make a large catalogue of short histories cheap to train."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import (
    TINY,
    assert_one_line_error,
    random_codes,
    run_cli,
    toy_rows,
    toy_task_file,
    write_atomic,
)

from benchmark.recommender.backbone import BackboneConfig, get_backbone, task_backbone
from benchmark.recommender.model import ModelConfig, SIDRecommender
from benchmark.recommender.train import (
    PLATEAU_FLOOR,
    epoch_batches,
    sequence_loss,
    validation_sample,
)
from tasks import get_task, load_task_file, prepare_task
from tasks.errors import TaskFileError

RECIPE = "\n[backbone.train]\ntrim_padding = true\nlength_buckets = 4\nlr = 1\n"


def _task_file(tmp_path, extra: str = ""):
    data = write_atomic(tmp_path / "d", *toy_rows(n_users=30, n_items=12, per_user=9))
    path = toy_task_file(tmp_path, data)
    path.write_text(path.read_text() + extra)
    return path


def test_epoch_batches_without_buckets_are_the_old_slices():
    lengths = np.arange(100) % 7 + 1
    got = epoch_batches(lengths, 16, 0, np.random.default_rng(5))
    perm = np.random.default_rng(5).permutation(100)
    assert [b.tolist() for b in got] == [perm[s : s + 16].tolist() for s in range(0, 100, 16)]


def test_length_buckets_cover_every_window_once_in_batches_of_like_lengths():
    lengths = np.random.default_rng(0).integers(1, 51, 1000)
    plain = epoch_batches(lengths, 16, 0, np.random.default_rng(1))
    bucketed = epoch_batches(lengths, 16, 8, np.random.default_rng(1))
    assert len(bucketed) == len(plain) == 63
    assert np.array_equal(np.sort(np.concatenate(bucketed)), np.arange(1000))
    width = [np.mean([lengths[b].max() for b in bs]) for bs in (plain, bucketed)]
    assert width[1] < 0.7 * width[0]  # the padding a trimmed batch pays falls
    again = epoch_batches(lengths, 16, 8, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(bucketed, again, strict=True))
    other = epoch_batches(lengths, 16, 8, np.random.default_rng(2))
    assert not all(np.array_equal(a, b) for a, b in zip(bucketed, other, strict=True))


def test_a_trimmed_batch_has_the_loss_of_the_padded_one():
    """Right padding under a causal encoder: cutting the padding columns changes no number."""
    torch.manual_seed(0)
    sizes = (5, 4, 3)
    model = SIDRecommender(ModelConfig(sizes=sizes, d_model=16, n_heads=2, n_enc_layers=1,
                                       d_ff=32, dropout=0.0, max_history=8))  # fmt: skip
    model.eval()
    codes = torch.from_numpy(random_codes(30, sizes))
    rng = np.random.default_rng(3)
    lengths = np.array([5, 2, 3, 1])
    inp = np.full((4, 8), -1)
    tgt = np.full((4, 8), -1)
    for r, n in enumerate(lengths):
        inp[r, :n], tgt[r, :n] = rng.integers(0, 30, n), rng.integers(0, 30, n)
    msk = tgt >= 0
    full = sequence_loss(model, codes, inp, tgt, msk)
    cut = sequence_loss(model, codes, inp[:, :5], tgt[:, :5], msk[:, :5])
    assert torch.allclose(full, cut, atol=1e-6)
    assert not torch.allclose(full, sequence_loss(model, codes, inp[:, :4], tgt[:, :4], msk[:, :4]))
    # bucketed batches weigh each target the same: the sum over `per_batch` targets
    n = int(msk.sum())
    assert torch.allclose(sequence_loss(model, codes, inp, tgt, msk, per_batch=n), full)
    half = sequence_loss(model, codes, inp, tgt, msk, per_batch=2 * n)
    assert torch.allclose(half, full / 2)


def test_bucketed_trimmed_training_is_deterministic_and_its_own_cache_entry(tmp_path):
    task = prepare_task(load_task_file(_task_file(tmp_path)))
    fast = replace(TINY, train=replace(TINY.train, trim_padding=True, length_buckets=2))
    assert fast.config_hash() != TINY.config_hash()
    first, _ = get_backbone(task, fast, seed=0, progress=False)
    losses = [e["loss"] for e in first.log["epochs"]]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    import shutil

    shutil.rmtree(first.folder)
    again, reused = get_backbone(task, fast, seed=0, progress=False)
    assert not reused and again.checkpoint_hash == first.checkpoint_hash
    plain, _ = get_backbone(task, TINY, seed=0, progress=False)
    assert plain.folder != first.folder and plain.checkpoint_hash != first.checkpoint_hash


def test_epochs_compare_on_a_fixed_sample_of_validation_users_drawn_apart_from_training(
    tmp_path,
):
    users = np.arange(100, 400)
    drawn = validation_sample(users, 50, seed=0)
    assert len(set(drawn)) == 50 and set(drawn) <= set(users) and np.all(np.diff(drawn) > 0)
    assert np.array_equal(drawn, validation_sample(users, 50, seed=0))
    assert not np.array_equal(drawn, validation_sample(users, 50, seed=1))
    assert validation_sample(users, 0, 0) is users and validation_sample(users, 300, 0) is users
    task = prepare_task(load_task_file(_task_file(tmp_path)))
    sampled = replace(TINY, train=replace(TINY.train, valid_sample=10))
    assert sampled.config_hash() != TINY.config_hash()
    every, _ = get_backbone(task, TINY, seed=0, progress=False)
    some, _ = get_backbone(task, sampled, seed=0, progress=False)
    assert every.log["valid_users"] == task.n_users and some.log["valid_users"] == 10
    # the sample has its own random stream: the first epoch trains the same numbers
    assert some.log["epochs"][0]["loss"] == every.log["epochs"][0]["loss"]
    assert some.log["epochs"][0]["ndcg@10"] != every.log["epochs"][0]["ndcg@10"]


def test_the_plateau_schedule_halves_lr_without_a_new_best_and_stops_by_itself(tmp_path):
    task = prepare_task(load_task_file(_task_file(tmp_path)))
    train = replace(TINY.train, schedule="plateau", max_epochs=200, patience=2)
    recipe = replace(TINY, train=train, arch=replace(TINY.arch, dropout=0.1))
    log = get_backbone(task, recipe, seed=0, progress=False)[0].log
    epochs = log["epochs"]
    assert log["stopped_by"] == "plateau" and len(epochs) < 200
    # `patience` halvings, one after every second epoch without a new best
    assert log["best_epoch"] == len(epochs) - 2 * train.patience
    best, stale, halved = -1.0, 0, 0
    for before, after in zip(epochs, epochs[1:], strict=False):  # an epoch's lr is its last step's
        stale = 0 if before["ndcg@10"] > best else stale + 1
        best = max(best, before["ndcg@10"])
        halve = stale > 0 and stale % 2 == 0
        assert after["lr"] == pytest.approx(before["lr"] * (0.5 if halve else 1.0))
        halved += halve
    assert halved == train.patience - 1  # the last halving follows the last epoch
    # without `patience` to stop it, the plateau schedule stops at the halving past its floor
    patient = replace(recipe, train=replace(train, patience=100))
    floor = get_backbone(task, patient, seed=0, progress=False)[0].log
    assert floor["stopped_by"] == "plateau" and len(floor["epochs"]) < 200
    assert floor["epochs"][-1]["lr"] == pytest.approx(train.lr * PLATEAU_FLOOR)
    cosine = get_backbone(task, TINY, seed=0, progress=False)[0].log
    assert cosine["stopped_by"] == "max_epochs" and cosine["epochs"][-1]["lr"] < 1e-9


def test_a_task_file_declares_its_recipe_without_moving_its_data_hash(tmp_path):
    plain = load_task_file(_task_file(tmp_path))
    spec = load_task_file(_task_file(tmp_path, RECIPE))
    cfg = task_backbone(spec)
    assert cfg.train.trim_padding is True and cfg.train.length_buckets == 4
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)  # an integer for a float
    assert cfg.features == BackboneConfig().features
    assert spec.spec_hash() == plain.spec_hash()
    assert task_backbone(plain) == BackboneConfig()


def test_standard_tasks_keep_the_default_recipe_except_beauty():
    default = BackboneConfig().config_hash()
    for name in ("ml100k-horror", "amazon14-office-ink"):
        assert task_backbone(get_task(name)).config_hash() == default
    for name in ("amazon14-beauty-fragrance", "amazon14-beauty-fragrance-loo"):
        cfg = task_backbone(get_task(name))
        assert cfg.train.trim_padding and cfg.train.length_buckets > 0


def test_label_smoothing_is_withdrawn_without_moving_a_hash():
    from benchmark.recommender.options import recorded_config
    from benchmark.recommender.train import TrainConfig
    from tasks.errors import BenchError

    recorded = TrainConfig().to_dict()
    assert recorded["label_smoothing"] == 0.0  # as every recipe recorded it
    assert recorded_config(TrainConfig, recorded, "train") == TrainConfig()
    refused = r"^train: option 'label_smoothing' was withdrawn \(reports/patches/label-smoothing"
    with pytest.raises(BenchError, match=refused + r"\.diff adds it back\); only 0\.0 is read$"):
        recorded_config(TrainConfig, {**recorded, "label_smoothing": 0.1}, "train")
    with pytest.raises(TypeError):
        TrainConfig(label_smoothing=0.1)


def test_committed_results_keep_their_backbone_hashes():
    """Adding or withdrawing an option moves no recipe's hash: the standard tasks' recipes are
    the committed boards' (ML-100k's and Office's e4b236bba4f5, the Beauty recipe 84e9f36e30e4),
    and every committed protocol 2.1 record's recipe still reads and reproduces its
    config_hash."""
    from pathlib import Path

    from benchmark.app.verify import backbone_config
    from benchmark.results.record import ResultRecord

    for name in ("ml100k-horror", "amazon14-office-ink"):
        assert task_backbone(get_task(name)).config_hash()[:12] == "e4b236bba4f5"
    beauty = task_backbone(get_task("amazon14-beauty-fragrance")).config_hash()[:12]
    assert beauty == "84e9f36e30e4"
    seen = set()
    for path in sorted((Path(__file__).parents[1] / "reports").rglob("seed[0-9].json")):
        record = ResultRecord.read(path)
        assert backbone_config(record).config_hash() == record.backbone.config_hash, path
        seen.add(record.backbone.config_hash[:12])
    assert {"e4b236bba4f5", "84e9f36e30e4"} <= seen


@pytest.mark.parametrize(
    "extra, needles",
    [
        (
            '\n[backbone.sid]\nmethod = "rqvae"\n',
            ["'backbone.sid.method'", "withdrawn", "reports/patches/rqvae-tokenizer.diff"],
        ),
        ("\n[backbone.training]\nlr = 0.1\n", ["[backbone.training]", "train"]),
        ("\n[backbone.train]\nlearning_rate = 0.1\n", ["'backbone.train.learning_rate'", "lr"]),
        ("\n[backbone.train]\ntrim_padding = 1\n", ["'backbone.train.trim_padding'", "bool"]),
        (
            "\n[backbone.train]\nlabel_smoothing = 0.1\n",
            [
                "'backbone.train.label_smoothing'",
                "withdrawn",
                "reports/patches/label-smoothing.diff",
            ],
        ),
        ("\n[backbone.arch]\nd_model = 12.5\n", ["'backbone.arch.d_model'", "int"]),
        ('\n[backbone.train]\nschedule = "linear"\n', ["'schedule'", "cosine, plateau", "linear"]),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_field(tmp_path, capsys, extra, needles):
    spec = load_task_file(_task_file(tmp_path, extra))
    with pytest.raises(TaskFileError, match="toy-scary@1.0"):
        task_backbone(spec)
    code, _, err = run_cli(capsys, "tasks", "show", str(tmp_path / "toy.toml"))
    assert_one_line_error(code, err, "toy-scary@1.0", *needles)


def test_a_recipe_table_must_hold_tables_of_values(tmp_path, capsys):
    path = _task_file(tmp_path, "\n[backbone]\ntrain = 3\n")
    code, _, err = run_cli(capsys, "tasks", "show", str(path))
    assert_one_line_error(code, err, str(path), "field 'backbone.train' must be a table")


def test_tasks_show_prints_the_recipe(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "tasks", "show", str(_task_file(tmp_path, RECIPE)))
    assert code == 0
    line = next(li for li in out.splitlines() if li.startswith("base recipe"))
    assert "train.trim_padding = True" in line and "train.length_buckets = 4" in line
