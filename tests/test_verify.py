"""Verified submissions (DESIGN §6): a cell's artifacts re-evaluated by `tracer-bench verify`
reproduce its metrics exactly on CPU; tampered artifacts are refused with one line, exit 2; the ✓
comes only from the board's verification ledger, never from what a result says of itself."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import (
    assert_one_line_error,
    rehash_manifest,
    run_cli,
)

from benchmark.app.cli import main
from benchmark.metrics.evidence import evidence_path
from benchmark.results.artifacts import artifacts_dir
from benchmark.results.keys import create_key, trusted_keys
from benchmark.results.ledger import LEDGER_NAME, read_ledger
from benchmark.results.record import result_path
from leaderboard.publish import build_folder


def _copy(submission, tmp_path, monkeypatch) -> Path:
    out, _, cache = submission
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(cache))  # this machine's base model and oracle
    root = tmp_path / "submission"
    shutil.copytree(out, root)
    return root


@pytest.fixture(scope="module", autouse=True)
def board_key(tmp_path_factory) -> str:
    """The board's key, at the default place of a configuration folder of this module's own
    (no trusted-keys.txt: a test trusts it with --trust); its public key."""
    config = tmp_path_factory.mktemp("config")
    old = os.environ.get("TRACER_BENCH_CONFIG")
    os.environ["TRACER_BENCH_CONFIG"] = str(config)
    yield create_key(config / "board-key.pem")
    if old is None:
        os.environ.pop("TRACER_BENCH_CONFIG")
    else:
        os.environ["TRACER_BENCH_CONFIG"] = old


@pytest.fixture(scope="module")
def board(submission, tmp_path_factory, board_key):
    """The submission verified into a board's folder by `tracer-bench verify` (exit 0), its
    ledger signed with the board's key."""
    out, task_file, cache = submission
    folder = tmp_path_factory.mktemp("board") / "verified"
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(cache)
    try:
        # the thread count the submission ran with (torch's default may not be os.cpu_count())
        threads = str(torch.get_num_threads())
        code = main(["verify", str(out), "--out", str(folder), "--task-file", str(task_file),
                     "--threads", threads])  # fmt: skip
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    assert code == 0
    return folder


def _ticks(capsys, folder: Path, tmp_path: Path, trust: str | None) -> dict[str, int]:
    """How many ✓ the leaderboard, the static page and the Hub table give `folder` to a viewer
    who trusts the key `trust` (None: no key)."""
    flags = ["--trust", trust] if trust else []
    site, hub = tmp_path / f"site-{bool(trust)}", tmp_path / f"hub-{bool(trust)}"
    code, out, _ = run_cli(capsys, "leaderboard", str(folder), "--site", str(site), *flags)
    assert code == 0, out
    page = (site / "index.html").read_text()
    hub.mkdir()
    build_folder(folder, hub, "org/board", trusted=trusted_keys(flags[1:]))
    return {
        "board": out.count("✓"),
        "page": page.count("✓"),
        "hub": int(pd.read_parquet(hub / "leaderboard.parquet")["verified"].sum()),
        "hub_results": int(pd.read_parquet(hub / "results.parquet")["verified"].sum()),
    }


def test_verified_submission_reproduces_its_run(submission, board, board_key, capsys):
    root, task_file, _ = submission
    ledger = read_ledger(board)
    assert sorted(ledger) == [f"toy-scary/{m}/seed0.json" for m in ("filter", "retrain", "tracer")]
    for method in ("retrain", "filter", "tracer"):
        a = json.loads(result_path(root, "toy-scary", method, 0).read_text())
        b = result_path(board, "toy-scary", method, 0)
        record = json.loads(b.read_text())
        assert "verification" not in record  # the ledger holds the record, not the result
        entry = ledger[f"toy-scary/{method}/seed0.json"]
        assert entry["result_sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
        assert entry["evidence_sha256"] == hashlib.sha256(
            evidence_path(b).read_bytes()).hexdigest()  # fmt: skip
        for name, stat in a["metrics"].items():
            have = record["metrics"][name]["value"]
            assert have == pytest.approx(stat["value"], rel=0, abs=0, nan_ok=True), name
    assert {e["key"] for e in ledger.values()} == {board_key}
    code, out, _ = run_cli(capsys, "validate", str(board), "--task-file", str(task_file),
                           "--trust", board_key)  # fmt: skip
    assert code == 0, out
    code, out, _ = run_cli(capsys, "leaderboard", str(root), "--trust", board_key)
    assert code == 0 and "✓" not in out  # the submission itself is self-reported


def test_a_verified_board_keeps_its_ticks_under_its_key_only(board, board_key, tmp_path, capsys):
    ticks = _ticks(capsys, board, tmp_path, board_key)
    # three rows (retrain, filter, tracer), each verified: the board prints them in its table,
    # the page in its table, the Hub in both parquet tables
    assert ticks == {"board": 3, "page": 3, "hub": 3, "hub_results": 3}, ticks
    code, out, _ = run_cli(capsys, "leaderboard", str(board), "--trust", board_key)
    assert "tracer 1.3 ✓" in out
    # without the key, the same folder shows nothing verified
    assert _ticks(capsys, board, tmp_path, None) == {
        "board": 0, "page": 0, "hub": 0, "hub_results": 0,
    }  # fmt: skip


def test_publishing_a_submission_carries_no_ledger(submission, board, board_key, tmp_path,
                                                   capsys):  # fmt: skip
    board_pub, pr_pub = tmp_path / "board", tmp_path / "pr"
    task = ["--task-file", str(submission[1])]
    code, out, _ = run_cli(capsys, "publish", str(board), "--repo", "org/board", "--dry-run",
                           "--out", str(board_pub), "--trust", board_key, *task)  # fmt: skip
    assert code == 0, out
    assert (board_pub / "results" / LEDGER_NAME).is_file()
    assert pd.read_parquet(board_pub / "leaderboard.parquet")["verified"].all()
    assert board_key in (board_pub / "README.md").read_text()  # the card states the key
    # a pull request carries the submitter's files only: a folder with a ledger is refused
    code, _, err = run_cli(capsys, "publish", str(board), "--repo", "org/board", "--dry-run",
                           "--out", str(pr_pub), "--create-pr", *task)  # fmt: skip
    assert_one_line_error(code, err, LEDGER_NAME, "a submission carries no verification ledger")
    code, out, _ = run_cli(capsys, "publish", str(submission[0]), "--repo", "org/board",
                           "--dry-run", "--out", str(pr_pub), "--create-pr", *task)  # fmt: skip
    assert code == 0, out
    assert not (pr_pub / "results" / LEDGER_NAME).exists()
    assert LEDGER_NAME not in out
    assert not pd.read_parquet(pr_pub / "leaderboard.parquet")["verified"].any()


def _forge_claim(path: Path) -> None:
    """The forgery of issue 25: a result declaring itself verified, with no artifacts at all."""
    record = json.loads(path.read_text())
    record["verification"] = {"verified": True, "harness_version": record["harness_version"],
                              "artifacts_manifest_sha256": "0" * 64}  # fmt: skip
    path.write_text(json.dumps(record))


def test_a_result_cannot_declare_itself_verified(
    submission, board_key, tmp_path, monkeypatch, capsys
):
    root = _copy(submission, tmp_path, monkeypatch)
    f = result_path(root, "toy-scary", "filter", 0)
    _forge_claim(f)
    nothing = {"board": 0, "page": 0, "hub": 0, "hub_results": 0}
    assert _ticks(capsys, root, tmp_path, board_key) == nothing
    code, out, _ = run_cli(capsys, "validate", str(root), "--task-file", str(submission[1]))
    bad = [line for line in out.splitlines() if "verification" in line]
    assert code == 1 and len(bad) == 1 and str(f) in bad[0], out
    assert "a result cannot declare itself verified" in bad[0]


def _edit_json(path: Path) -> None:
    record = json.loads(path.read_text())
    record["cost"]["unlearn_seconds"] += 1.0
    path.write_text(json.dumps(record, indent=2))


def _edit_evidence(path: Path) -> None:
    ev = evidence_path(path)
    frame = pd.read_parquet(ev)
    frame.loc[frame.index[0], "latent_rank"] += 1
    frame.to_parquet(ev, index=False)


@pytest.mark.parametrize("edit", [_edit_json, _edit_evidence, _forge_claim])
def test_a_verified_result_edited_afterwards_loses_its_tick(
    board, board_key, tmp_path, capsys, edit
):
    folder = tmp_path / "board"
    shutil.copytree(board, folder)
    f = result_path(folder, "toy-scary", "tracer", 0)
    edit(f)
    ticks = _ticks(capsys, folder, tmp_path, board_key)
    assert ticks == {"board": 2, "page": 2, "hub": 2, "hub_results": 2}
    code, out, _ = run_cli(capsys, "leaderboard", str(folder), "--trust", board_key)
    assert "tracer 1.3 ✓" not in out and "filter 1.0 ✓" in out
    code, out, _ = run_cli(capsys, "validate", str(folder), "--trust", board_key)
    want = f"{folder / LEDGER_NAME}: toy-scary/tracer/seed0.json: changed since it was verified"
    assert code == 1 and want in out, out


def test_a_record_for_one_result_does_not_vouch_for_another(board, board_key, tmp_path, capsys):
    folder = tmp_path / "board"
    shutil.copytree(board, folder)
    ledger = folder / LEDGER_NAME
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    tracer = next(e for e in entries if e["result"].startswith("toy-scary/tracer/"))
    filter_row = next(e for e in entries if e["result"].startswith("toy-scary/filter/"))
    filter_row.update({k: tracer[k] for k in ("result_sha256", "evidence_sha256")})
    ledger.write_text("".join(json.dumps(e) + "\n" for e in entries))
    # filter's entry now names tracer's bytes (and its signature no longer verifies)
    assert _ticks(capsys, folder, tmp_path, board_key)["board"] == 2
    code, out, _ = run_cli(capsys, "leaderboard", str(folder), "--trust", board_key)
    assert "filter 1.0 ✓" not in out and "tracer 1.3 ✓" in out
    # a whole verified file copied over another result's place is not that result's either
    shutil.copyfile(result_path(folder, "toy-scary", "tracer", 0),
                    result_path(folder, "toy-scary", "filter", 0))  # fmt: skip
    code, out, _ = run_cli(capsys, "leaderboard", str(folder), "--trust", board_key)
    assert "filter 1.0 ✓" not in out


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


def _wrong_shapes(folder: Path) -> None:
    """One more level-1 code in the config and the SID table (within the base recipe's limits),
    none in the weights."""
    for name in ("model.json", "sids.json"):
        doc = json.loads((folder / name).read_text())
        doc["sizes"][0] += 1
        (folder / name).write_text(json.dumps(doc))


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
        (_wrong_shapes, True, ["model.safetensors", "does not match the model config"]),
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
        rehash_manifest(folder)
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
    rehash_manifest(folder)  # the manifest rewritten too: no longer the one the result recorded
    code, out, _ = run_cli(capsys, "validate", str(root), "--task-file", task_file)
    assert code == 1 and "artifacts.manifest_sha256" in out


def test_a_ledger_entry_outside_the_folder_is_one_line(board, tmp_path, capsys):
    folder = tmp_path / "board"
    shutil.copytree(board, folder)
    ledger = folder / LEDGER_NAME
    entry = json.loads(ledger.read_text().splitlines()[0])
    outside = json.dumps({**entry, "result": "../x/seed0.json"})
    ledger.write_text(ledger.read_text() + outside + "\n")
    code, _, err = run_cli(capsys, "leaderboard", str(folder))
    assert_one_line_error(code, err, f"{ledger}:4", "not a path inside the results folder")
    code, out, _ = run_cli(capsys, "validate", str(folder))
    assert code == 1 and f"{ledger}: -: {ledger}:4: result '../x/seed0.json'" in out, out


@pytest.mark.parametrize("recorded", [1, 2])
def test_recomputation_runs_at_the_recorded_thread_count(recorded):
    """Relearning is training, whose bits depend on the thread count: `verify` and `validate
    --checkpoints` recompute at the count the cell was recorded with, then restore this one."""
    from types import SimpleNamespace

    from benchmark.app.verify import recorded_threads

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with recorded_threads(SimpleNamespace(environment={"threads": recorded})):
            assert torch.get_num_threads() == recorded
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
