"""Verified submissions (DESIGN §6): a cell's artifacts re-evaluated by `tracer-bench verify`
reproduce its metrics exactly on CPU; tampered artifacts are refused with one line, exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import toy_rows, toy_task_file, write_atomic
from test_backbone import TINY
from test_cli_errors import assert_one_line_error, run_cli
from test_evaluation import SMALL

from benchmark.artifacts import artifacts_dir
from benchmark.runner import result_path, run_grid


@pytest.fixture(scope="module")
def submission(tmp_path_factory):
    """A real tiny run with --save-artifacts: (results folder, task file, cache)."""
    base = tmp_path_factory.mktemp("verify")
    cache = base / "cache"
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(cache)
    try:
        data = write_atomic(base / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
        task_file = toy_task_file(base, data)
        out = base / "results"
        run_grid([str(task_file)], ["retrain", "filter", "tracer"], [0], out, progress=False,
                 backbone=TINY, eval_cfg=SMALL, save_artifacts=True)  # fmt: skip
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    return out, task_file, cache


def _copy(submission, tmp_path, monkeypatch) -> Path:
    out, _, cache = submission
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(cache))  # this machine's base model and oracle
    root = tmp_path / "submission"
    shutil.copytree(out, root)
    return root


def test_verified_submission_reproduces_its_run(submission, tmp_path, monkeypatch, capsys):
    root = _copy(submission, tmp_path, monkeypatch)
    _, task_file, _ = submission
    verified = tmp_path / "verified"
    code, out, _ = run_cli(capsys, "verify", str(root), "--out", str(verified), "--task-file",
                           str(task_file))  # fmt: skip
    assert code == 0 and out.count("verified ->") == 3, out
    for method in ("retrain", "filter", "tracer"):
        a = json.loads(result_path(root, "toy-scary", method, 0).read_text())
        b = json.loads(result_path(verified, "toy-scary", method, 0).read_text())
        assert b["verification"]["verified"] is True
        for name, stat in a["metrics"].items():
            assert b["metrics"][name]["value"] == stat["value"] or stat["value"] != stat["value"]
    code, out, _ = run_cli(capsys, "validate", str(verified), "--task-file", str(task_file))
    assert code == 0, out
    code, out, _ = run_cli(capsys, "leaderboard", str(verified))
    assert code == 0 and "tracer 1.2 ✓" in out
    code, out, _ = run_cli(capsys, "leaderboard", str(root))
    assert code == 0 and "✓" not in out  # the submission itself is self-reported


def test_a_changed_metric_is_not_verified(submission, tmp_path, monkeypatch, capsys):
    root = _copy(submission, tmp_path, monkeypatch)
    f = result_path(root, "toy-scary", "tracer", 0)
    record = json.loads(f.read_text())
    record["metrics"]["oracle_match"]["value"] += 0.1
    f.write_text(json.dumps(record))
    code, out, _ = run_cli(capsys, "verify", str(f), "--out", str(tmp_path / "v"), "--task-file",
                           str(submission[1]))  # fmt: skip
    assert code == 1 and "NOT verified: oracle_match" in out
    assert not (tmp_path / "v" / "toy-scary" / "tracer" / "seed0.json").exists()


def _rehash(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, meta in manifest["files"].items():
        data = (folder / name).read_bytes()
        meta.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _wrong_shapes(folder: Path) -> None:
    cfg = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**cfg, "d_model": cfg["d_model"] * 2}))


def _duplicate_sids(folder: Path) -> None:
    doc = json.loads((folder / "sids.json").read_text())
    doc["codes"][1] = doc["codes"][0]
    (folder / "sids.json").write_text(json.dumps(doc))


def _truncated(folder: Path) -> None:
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])


def _pickle(folder: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, folder / "model.safetensors")


@pytest.mark.parametrize(
    "tamper, rehash, needles",
    [
        (_wrong_shapes, True, ["model.safetensors", "do not match the model config"]),
        (_duplicate_sids, True, ["sids.json", "invalid SID table"]),
        (_truncated, True, ["model.safetensors", "not a safetensors file"]),
        (_pickle, True, ["model.safetensors", "not a safetensors file"]),
        (_truncated, False, ["model.safetensors", "bytes, the manifest says"]),
        (_duplicate_sids, False, ["sids.json", "sha256 differs"]),
    ],
)
def test_tampered_artifacts_are_refused(submission, tmp_path, monkeypatch, capsys, tamper,
                                        rehash, needles):  # fmt: skip
    root = _copy(submission, tmp_path, monkeypatch)
    f = result_path(root, "toy-scary", "tracer", 0)
    folder = artifacts_dir(f)
    tamper(folder)
    if rehash:  # a careful tamperer updates the manifest too
        _rehash(folder)
    code, _, err = run_cli(capsys, "verify", str(f), "--out", str(tmp_path / "v"), "--task-file",
                           str(submission[1]))  # fmt: skip
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "v").exists()


def test_validate_checks_artifact_files_when_present(submission, tmp_path, monkeypatch, capsys):
    root = _copy(submission, tmp_path, monkeypatch)
    task_file = str(submission[1])
    f = result_path(root, "toy-scary", "tracer", 0)
    assert json.loads(f.read_text())["artifacts"]["folder"] == "seed0.artifacts"
    code, out, _ = run_cli(capsys, "validate", str(root), "--task-file", task_file)
    assert code == 0, out
    folder = artifacts_dir(f)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:-8] + bytes(8))  # same size, other weights
    code, out, _ = run_cli(capsys, "validate", str(root), "--task-file", task_file)
    assert code == 1 and "model.safetensors: sha256 differs from the manifest's" in out
    _rehash(folder)  # the manifest rewritten too: no longer the one the result recorded
    code, out, _ = run_cli(capsys, "validate", str(root), "--task-file", task_file)
    assert code == 1 and "artifacts.manifest_sha256" in out
