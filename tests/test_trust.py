"""✓ means signed by a key the viewer trusts (DESIGN §6, issue 42): a ledger shipped with a
submission, an unsigned entry, an entry signed by another key and a ledger below the root give no
✓ on the board, the page or the Hub tables and are `validate` problems; the board's own signed
entries keep their ✓ under `--trust` of its key and lose them without it. The ledgers here are
written with `record_verified` on the tiny grid's real results (tests/test_verify.py signs
through `tracer-bench verify` itself)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from conftest import publish_dry_run

from benchmark.app.cli import main
from benchmark.metrics.evidence import evidence_path
from benchmark.results.keys import create_key, load_private
from benchmark.results.ledger import LEDGER_NAME, read_ledger, record_verified
from benchmark.results.record import result_files
from leaderboard.publish import build_folder


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _own_config(tmp_path, monkeypatch):
    """No trusted-keys.txt of the user's leaks in: each test has its own configuration folder."""
    monkeypatch.setenv("TRACER_BENCH_CONFIG", str(tmp_path / "config"))


@pytest.fixture
def keys(tmp_path) -> dict[str, tuple[object, str]]:
    """The board's key and a stranger's: (private key, public text)."""
    out = {}
    for who in ("board", "stranger"):
        public = create_key(tmp_path / "keys" / f"{who}.pem")
        out[who] = (load_private(tmp_path / "keys" / f"{who}.pem"), public)
    return out


def signed_board(tiny_results: Path, dest: Path, key) -> Path:
    """A copy of the tiny grid whose every result has a ledger entry signed with `key`."""
    shutil.copytree(tiny_results, dest)
    for f in result_files(dest):
        record_verified(dest, f, "0" * 64, "toy-scary@1.0", "test", key)
    return dest


def ticks(capsys, folder: Path, tmp_path: Path, trust: list[str]) -> dict[str, int]:
    """How many ✓ the leaderboard, the static page and the Hub tables give `folder`."""
    flags = [x for k in trust for x in ("--trust", k)]
    site = tmp_path / f"site{len(list(tmp_path.glob('site*')))}"
    code, out, err = run_cli(capsys, "leaderboard", str(folder), "--site", str(site), *flags)
    assert code == 0, err
    hub = tmp_path / f"hub{len(list(tmp_path.glob('hub*')))}"
    hub.mkdir()
    from benchmark.results.keys import trusted_keys

    build_folder(folder, hub, "org/board", trusted=trusted_keys(trust))
    return {
        "board": out.count("✓"),
        "page": (site / "index.html").read_text().count("✓"),
        "hub": int(pd.read_parquet(hub / "leaderboard.parquet")["verified"].sum()),
        "hub_results": int(pd.read_parquet(hub / "results.parquet")["verified"].sum()),
    }


def task_file(tiny_results: Path) -> str:
    return str(tiny_results.parent / "toy.toml")  # written by the tiny_results fixture


def n_rows(folder: Path) -> int:
    return len({f.parent for f in result_files(folder)})  # one board row per method


def test_the_board_key_gives_ticks_only_to_who_trusts_it(tiny_results, tmp_path, keys, capsys):
    board = signed_board(tiny_results, tmp_path / "board", keys["board"][0])
    public = keys["board"][1]
    rows, files = n_rows(board), len(result_files(board))
    assert ticks(capsys, board, tmp_path, [public]) == {
        "board": rows, "page": rows, "hub": rows, "hub_results": files,
    }  # fmt: skip
    nothing = {"board": 0, "page": 0, "hub": 0, "hub_results": 0}
    assert ticks(capsys, board, tmp_path, []) == nothing
    assert ticks(capsys, board, tmp_path, [keys["stranger"][1]]) == nothing
    # the user's configuration counts as --trust does
    code, out, _ = run_cli(capsys, "key", "trust", public)
    assert code == 0 and "trusted" in out
    assert ticks(capsys, board, tmp_path, [])["board"] == rows


def test_validate_accepts_the_trusted_board_and_names_what_it_cannot_check(
    tiny_results, tmp_path, keys, capsys
):
    board = signed_board(tiny_results, tmp_path / "board", keys["board"][0])
    code, out, _ = run_cli(capsys, "validate", str(board), "--trust", keys["board"][1],
                           "--task-file", task_file(tiny_results))  # fmt: skip
    assert code == 0, out
    code, out, _ = run_cli(capsys, "validate", str(board), "--task-file", task_file(tiny_results))
    assert code == 1
    assert out.count("signed by a key not trusted here") == len(result_files(board)), out


def forge_ledger(folder: Path, key=None) -> None:
    """What a dishonest submitter can write: entries with the correct sha256 of their own files,
    unsigned or signed with their own key."""
    lines = []
    for f in result_files(folder):
        entry = {
            "result": f.relative_to(folder).as_posix(),
            "result_sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
            "evidence_sha256": hashlib.sha256(evidence_path(f).read_bytes()).hexdigest(),
            "artifacts_manifest_sha256": "0" * 64, "task": "toy-scary@1.0",
            "harness_version": "test", "timestamp": "2026-01-01T00:00:00+00:00",
        }  # fmt: skip
        lines.append(json.dumps(entry))
    (folder / LEDGER_NAME).write_text("\n".join(lines) + "\n")
    if key is not None:  # re-sign every entry with the forger's key
        for f in result_files(folder):
            record_verified(folder, f, "0" * 64, "toy-scary@1.0", "test", key)


@pytest.mark.parametrize("how", ["unsigned", "stranger", "below the root"])
def test_a_shipped_ledger_gives_no_tick_and_is_a_problem(tiny_results, tmp_path, keys, capsys, how):
    folder = tmp_path / "submission"
    shutil.copytree(tiny_results, folder)
    forge_ledger(folder, keys["stranger"][0] if how == "stranger" else None)
    if how == "below the root":  # a task sub-folder's ledger: it counts for nobody
        signed_board(tiny_results, tmp_path / "signed", keys["board"][0])
        task = next(p for p in folder.iterdir() if p.is_dir())
        (folder / LEDGER_NAME).unlink()
        shutil.copyfile(tmp_path / "signed" / LEDGER_NAME, task / LEDGER_NAME)
    trust = [keys["board"][1]]  # the viewer trusts the board's key, not the forger's
    assert ticks(capsys, folder, tmp_path, trust) == {
        "board": 0, "page": 0, "hub": 0, "hub_results": 0,
    }  # fmt: skip
    code, out, _ = run_cli(capsys, "validate", str(folder), "--trust", trust[0],
                           "--task-file", task_file(tiny_results))  # fmt: skip
    assert code == 1
    want = {"unsigned": ": unsigned: shown self-reported",
            "stranger": "signed by a key not trusted here",
            "below the root": "counts only at the root"}[how]  # fmt: skip
    assert want in out, out
    if how == "below the root":  # the sub-folder passed as the root: its ledger still counts
        code, out, _ = run_cli(capsys, "leaderboard", str(task), "--trust", trust[0])
        assert code == 0 and "✓" not in out  # its paths are the root's, not the sub-folder's


def test_an_edited_signature_or_result_loses_the_tick(tiny_results, tmp_path, keys, capsys):
    board = signed_board(tiny_results, tmp_path / "board", keys["board"][0])
    ledger = board / LEDGER_NAME
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    entries[0]["task"] = "another@1.0"  # a signed field changed after signing
    ledger.write_text("".join(json.dumps(e) + "\n" for e in entries))
    tf = task_file(tiny_results)
    code, out, _ = run_cli(capsys, "validate", str(board), "--trust", keys["board"][1],
                           "--task-file", tf)  # fmt: skip
    assert code == 1 and out.count("signature does not verify") == 1, out
    victim = board / entries[1]["result"]
    record = json.loads(victim.read_text())
    record["harness_version"] = "9.9.9"
    victim.write_text(json.dumps(record))
    code, out, _ = run_cli(capsys, "validate", str(board), "--trust", keys["board"][1],
                           "--task-file", tf)  # fmt: skip
    assert "changed since it was verified" in out, out


def test_a_submission_pr_refuses_a_ledger_and_the_board_card_states_its_key(
    tiny_results, tmp_path, keys, capsys
):
    board = signed_board(tiny_results, tmp_path / "board", keys["board"][0])
    public, tf = keys["board"][1], task_file(tiny_results)
    code, _, err = publish_dry_run(capsys, board, tmp_path / "pr", tf, "--create-pr")
    assert code == 2 and "a submission carries no verification ledger" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "pr").exists()
    code, out, err = publish_dry_run(capsys, board, tmp_path / "pub", tf, "--trust", public)
    assert code == 0, err
    card = (tmp_path / "pub" / "README.md").read_text()
    assert f"`{public}`" in card and keys["stranger"][1] not in card
    assert pd.read_parquet(tmp_path / "pub" / "leaderboard.parquet")["verified"].all()
    # without the key the board's own ledger cannot be checked: publish refuses, as validate does
    code, _, err = publish_dry_run(capsys, board, tmp_path / "pub2", tf)
    assert code == 2 and "signed by a key not trusted here" in err


def test_publish_never_writes_into_its_own_results(tiny_results, tmp_path, capsys):
    folder = tmp_path / "results"
    shutil.copytree(tiny_results, folder)
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    for out in (folder, folder / "pub"):
        code, _, err = publish_dry_run(capsys, folder, out, task_file(tiny_results))
        assert code == 2 and "inside the results folder" in err, err
    code, _, err = publish_dry_run(capsys, folder, tmp_path / "pub", task_file(tiny_results))
    assert code == 0, err
    # a published folder published onto itself
    code, _, err = run_cli(capsys, "publish", str(tmp_path / "pub" / "results"), "--repo",
                           "org/b", "--dry-run", "--out", str(tmp_path / "pub"),
                           "--task-file", task_file(tiny_results))  # fmt: skip
    assert code == 2 and "holds the results folder" in err, err
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_keys_are_owner_only_never_overwritten_and_rotate(tiny_results, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "key", "create")
    path = tmp_path / "config" / "board-key.pem"
    assert code == 0 and out.startswith("ed25519:") and path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    old_public = out.strip()
    code, _, err = run_cli(capsys, "key", "create")
    assert code == 2 and "never overwritten" in err
    code, out, _ = run_cli(capsys, "key", "show")
    assert out.strip() == old_public
    os.chmod(path, 0o644)
    code, _, err = run_cli(capsys, "key", "show")
    assert code == 2 and "readable by others" in err
    os.chmod(path, 0o600)
    board = signed_board(tiny_results, tmp_path / "board", load_private(path))
    code, new_public, _ = run_cli(capsys, "key", "create", "--out", str(tmp_path / "new.pem"))
    code, out, _ = run_cli(capsys, "key", "resign", str(board), "--key", str(tmp_path / "new.pem"),
                           "--trust", old_public)  # fmt: skip
    assert code == 0, out
    assert {e["key"] for e in read_ledger(board).values()} == {new_public.strip()}
    code, out, _ = run_cli(capsys, "validate", str(board), "--trust", new_public.strip(),
                           "--task-file", task_file(tiny_results))  # fmt: skip
    assert code == 0, out
