"""A board's checkpoints travel with it (benchmark.results.checkpoints): packed from the cache
into the board, installed from it into an empty cache instead of training, refused in one line
when missing, altered or foreign, published with the board (not with a submission) and read back
as a Hub dataset."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_one_line_error, copy_results, edit, publish_dry_run, run_cli, task_files

import benchmark.recommender.backbone as backbone
from benchmark.app.runner import run_grid
from benchmark.metrics.bootstrap import metric_stats
from benchmark.metrics.evidence import Evidence, evidence_path
from benchmark.metrics.registry import evidence_metric_names
from benchmark.results.checkpoint_source import CheckpointSource
from benchmark.results.checkpoints import CHECKPOINTS, CheckpointError, board_pairs, pack, resolve
from benchmark.results.record import ResultRecord
from leaderboard.validate import validate


@pytest.fixture
def board(tiny_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the tiny board with its checkpoints packed from the cache that trained them;
    then the test's own cache, empty of its models."""
    out = copy_results(tiny_results, tmp_path)
    shutil.copyfile(task_files(tiny_results)[0], task_files(out)[0])
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tiny_results.parent / "cache"))
    written, missing = pack(out)
    assert len(written) == 4 and missing == []  # seeds 0 and 1: a base model and an oracle each
    assert pack(out) == ([], [])  # packed once
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "empty-cache"))
    return out


def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a model was trained")

    monkeypatch.setattr(backbone, "train_backbone", refuse)


def test_a_method_runs_on_the_boards_models_without_training(board, tmp_path, monkeypatch):
    no_training(monkeypatch)
    out = tmp_path / "mine"
    task = str(task_files(board)[0])
    counts = run_grid(
        [task], ["npo"], [0, 1], out, progress=False, checkpoints=CheckpointSource((board,))
    )
    assert counts["done"] == 2 and counts["failed"] == 0
    mine = ResultRecord.read(out / "toy-scary" / "npo" / "seed0.json")
    theirs = ResultRecord.read(board / "toy-scary" / "filter" / "seed0.json")
    assert mine.backbone.checkpoint_sha256 == theirs.backbone.checkpoint_sha256
    assert mine.oracle.checkpoint_sha256 == theirs.oracle.checkpoint_sha256
    # the new cell sits beside the board's: the same examples, original and oracle columns
    shutil.copytree(out / "toy-scary" / "npo", board / "toy-scary" / "npo")
    assert validate(board, task_files(board)) == []


def test_a_board_without_a_seeds_checkpoints_trains_only_when_asked(board, tmp_path):
    task = str(task_files(board)[0])
    source = CheckpointSource((board,))
    with pytest.raises(CheckpointError, match="no checkpoints of toy-scary@1.0 seed 2"):
        run_grid([task], ["filter"], [2], tmp_path / "a", progress=False, checkpoints=source)
    trained = CheckpointSource((board,), train_missing=True)
    counts = run_grid([task], ["filter"], [2], tmp_path / "b", progress=False, checkpoints=trained)
    assert counts["done"] == 1


def _sha(board: Path, seed: int, part: str = "backbone") -> str:
    record = ResultRecord.read(board / "toy-scary" / "filter" / f"seed{seed}.json")
    return getattr(record, part).checkpoint_sha256


@pytest.mark.parametrize("damage", ["flip a byte", "remove the tokenizer", "swap in seed 1's"])
def test_an_altered_or_missing_checkpoint_is_one_line(board, tmp_path, capsys, damage):
    folder = board / CHECKPOINTS / _sha(board, 0)
    if damage == "flip a byte":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif damage == "remove the tokenizer":
        (folder / "sids.json").unlink()
    else:
        shutil.rmtree(folder)
        shutil.copytree(board / CHECKPOINTS / _sha(board, 1), folder)
    argv = ["run", "--tasks", str(task_files(board)[0]), "--methods", "filter", "--seeds", "0"]
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "o"), "--checkpoints", str(board))
    assert_one_line_error(code, err, str(folder), "the board's base model")
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").rglob("*.json"))


def test_a_foreign_checkpoint_named_by_forged_results_is_refused(board):
    """Results rewritten to name seed 1's base model for seed 0: the hash matches the folder, but
    the checkpoint itself says it was trained with another seed."""
    from tasks import get_task, prepare_task

    other = _sha(board, 1)
    for f in board.glob("toy-scary/*/seed0.json"):
        edit(f, lambda r: r["backbone"].update(checkpoint_sha256=other))
    task = prepare_task(get_task(str(task_files(board)[0])))
    record = ResultRecord.read(board / "toy-scary" / "filter" / "seed0.json")
    from benchmark.app.verify import task_recipe

    recipe = task_recipe(record, task, "test")
    with pytest.raises(CheckpointError, match="trained with another seed than 0"):
        CheckpointSource((board,)).install("models", task, recipe, 0)


def test_validate_recomputes_the_reference_columns_from_the_boards_checkpoints(
    board, tmp_path, monkeypatch, capsys
):
    """A one-cell submission that rewrote its oracle columns (and its metrics to match) passes
    plain `validate`; with the board's checkpoints at hand `validate` recomputes them (no
    training) and sees it."""
    import pandas as pd

    sub = tmp_path / "sub"
    shutil.copytree(board / "toy-scary" / "ga", sub / "toy-scary" / "ga")
    f = sub / "toy-scary" / "ga" / "seed0.json"
    frame = pd.read_parquet(evidence_path(f))
    frame["oracle_relearn_rank"] = frame["oracle_relearn_rank"] * 0  # a perfect-looking oracle
    frame.to_parquet(evidence_path(f), index=False)
    import hashlib

    digest = hashlib.sha256(evidence_path(f).read_bytes()).hexdigest()
    stats = metric_stats(Evidence.from_frame(frame), evidence_metric_names([1, 5, 10]), n_boot=20)
    stats = {name: dataclasses.asdict(stat) for name, stat in stats.items()}
    edit(f, lambda r: (r["evidence"].update(sha256=digest), r["metrics"].update(stats)))
    no_training(monkeypatch)
    from benchmark.app.verify import reference_frame

    def recompute(record, task):
        return reference_frame(record, task, CheckpointSource((board,)))

    problems = validate(sub, task_files(board), recompute)
    assert any(
        "oracle_relearn_rank" in p.message and "recomputation" in p.message for p in problems
    )
    assert validate(sub, task_files(board)) == []  # plain validate cannot see it
    task = str(task_files(board)[0])
    code, out, _ = run_cli(
        capsys, "validate", str(sub), "--task-file", task, "--checkpoints", str(board)
    )
    assert code == 1 and "oracle_relearn_rank" in out and "recomputation" in out


def test_the_boards_publish_carries_its_checkpoints_and_a_submissions_does_not(
    board, tmp_path, capsys
):
    from huggingface_hub import DatasetCard

    out = tmp_path / "dataset"
    code, stdout, _ = publish_dry_run(capsys, board, out, str(task_files(board)[0]))
    assert code == 0
    pairs = board_pairs(board)
    shas = {p.base for p in pairs.values()} | {p.oracle for p in pairs.values()}
    assert {p.name for p in (out / CHECKPOINTS).iterdir()} == shas
    card = DatasetCard.load(out / "README.md")  # huggingface_hub reads the card back
    assert all(f"`{sha}`" in card.text for sha in shas) and "not published" not in card.text
    assert f"{CHECKPOINTS}/{next(iter(shas))}/model.safetensors" in stdout

    pr = tmp_path / "pr"
    code, _, _ = publish_dry_run(capsys, board, pr, str(task_files(board)[0]), "--create-pr")
    assert code == 0 and not (pr / CHECKPOINTS).exists()
    assert "## Checkpoints" not in (pr / "README.md").read_text()


def test_a_hub_dataset_is_a_checkpoint_source(board, tmp_path, capsys, monkeypatch):
    """`hf://datasets/org/board` is downloaded with huggingface_hub (here: the published dry-run
    folder stands in for the Hub) and serves the run like the board folder."""
    import huggingface_hub

    out = tmp_path / "dataset"
    assert publish_dry_run(capsys, board, out, str(task_files(board)[0]))[0] == 0
    asked = {}

    def snapshot_download(repo_id, repo_type, revision, allow_patterns):
        asked.update(repo=repo_id, type=repo_type, revision=revision)
        return str(out)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    root = resolve("hf://datasets/org/board@v1")
    assert asked == {"repo": "org/board", "type": "dataset", "revision": "v1"} and root == out
    no_training(monkeypatch)
    task = str(task_files(board)[0])
    got = run_grid([task], ["ga"], [1], tmp_path / "o", progress=False,
                   checkpoints=CheckpointSource((root,)))  # fmt: skip
    assert got["done"] == 1
    record = json.loads((tmp_path / "o" / "toy-scary" / "ga" / "seed1.json").read_text())
    assert record["backbone"]["checkpoint_sha256"] == _sha(board, 1)


@pytest.mark.parametrize("source", ["hf://datasets/org", "hf://org/board", "hf://datasets/o/b/c"])
def test_a_hub_source_names_a_dataset_repo(source):
    with pytest.raises(CheckpointError, match="want hf://datasets/<org>/<name>"):
        resolve(source)


def test_pack_names_what_this_machine_has_not_cached(tiny_results, tmp_path, capsys, monkeypatch):
    out = copy_results(tiny_results, tmp_path)
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "empty-cache"))
    code, stdout, _ = run_cli(capsys, "checkpoints", "pack", str(out))
    assert code == 1 and "0 written, 4 missing" in stdout
    assert not (out / CHECKPOINTS).exists()
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tiny_results.parent / "cache"))
    code, stdout, _ = run_cli(capsys, "checkpoints", "pack", str(out))
    assert code == 0 and "4 written, 0 missing" in stdout


def test_a_grid_takes_each_tasks_models_from_its_own_board(board, tmp_path, monkeypatch, capsys):
    """Two boards, one holding seed 0 and one seed 1 (as one board per task does): a grid over
    both seeds takes each seed's models from the board that names them; boards that name
    different models for one (task, seed) are refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, keep in ((a, "seed0"), (b, "seed1")):
        shutil.copytree(board, folder)
        for f in folder.glob("toy-scary/*/seed*"):
            if not f.name.startswith(keep + "."):
                f.unlink()
    no_training(monkeypatch)
    task = str(task_files(board)[0])
    argv = ["run", "--tasks", task, "--methods", "ga", "--seeds", "0", "1", "--no-leaderboard"]
    code, _, _ = run_cli(capsys, *argv, "--out", str(tmp_path / "o"), "--checkpoints", str(a),
                         "--checkpoints", str(b), "--quiet")  # fmt: skip
    assert code == 0 and len(list((tmp_path / "o").rglob("seed*.json"))) == 2
    edit(b / "toy-scary" / "ga" / "seed1.json", lambda r: r.update(seed=0))
    (b / "toy-scary" / "ga" / "seed1.json").rename(b / "toy-scary" / "ga" / "seed0.json")
    with pytest.raises(CheckpointError, match="name different checkpoints"):
        CheckpointSource((a, b)).pair("toy-scary@1.0", 0, _recipe(board))


def _recipe(board: Path):
    from benchmark.app.verify import task_recipe
    from tasks import get_task, prepare_task

    task = prepare_task(get_task(str(task_files(board)[0])))
    record = ResultRecord.read(board / "toy-scary" / "filter" / "seed0.json")
    return task_recipe(record, task, "test")
