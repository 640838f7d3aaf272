"""Hostile result files (issue 42, items 3-5): a result folder a stranger wrote never gives a
traceback and never makes the project write outside `--out`: one line and exit 2 from
`leaderboard` and `publish`, a problem (exit 1) from `validate`. The other hostile inputs:
tests/test_hostile_tasks.py (task files), tests/test_hostile_artifacts.py (`verify`'s artifacts),
tests/test_trust.py (forged ledgers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import publish_dry_run

from benchmark.app.cli import main
from benchmark.metrics.evidence import evidence_path
from benchmark.results.record import result_files

DEEP = "[" * 10_000 + "]" * 10_000


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    """Exit 2 and one error line, the last (progress lines such as 'preparing …' may come first),
    with no traceback."""
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert [line for line in lines if "error" in line.lower()] == [lines[-1]], err
    assert lines[-1].startswith("tracer-bench: error: "), err
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])


def task_file(tiny_results: Path) -> str:
    return str(tiny_results.parent / "toy.toml")


@pytest.fixture
def folder(tiny_results, tmp_path) -> Path:
    out = tmp_path / "submission"
    shutil.copytree(tiny_results, out)
    return out


def files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def every_reader(capsys, folder: Path, tiny_results: Path, tmp_path: Path, *needles: str):
    """leaderboard and publish: one line, exit 2, nothing written; validate: a problem, exit 1."""
    before = files_under(tmp_path)
    code, _, err = run_cli(capsys, "leaderboard", str(folder))
    assert_one_line(code, err, *needles)
    code, _, err = publish_dry_run(capsys, folder, tmp_path / "pub", task_file(tiny_results))
    assert_one_line(code, err, *needles)
    code, out, err = run_cli(capsys, "validate", str(folder), "--task-file",
                             task_file(tiny_results))  # fmt: skip
    assert code == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in out, (needle, out)
    assert files_under(tmp_path) == before  # nothing written anywhere (no --out folder either)
    return out


def test_json_nested_10000_deep_is_one_line(folder, tiny_results, tmp_path, capsys):
    victim = result_files(folder)[0]
    victim.write_text('{"schema_version": 3, "metrics": ' + DEEP + "}")
    every_reader(capsys, folder, tiny_results, tmp_path, str(victim), "nested deeper than")


def test_a_repeated_key_is_refused(folder, tiny_results, tmp_path, capsys):
    victim = result_files(folder)[0]
    text = victim.read_text()
    victim.write_text(text.replace('"seed":', '"seed": 0, "seed":', 1))
    every_reader(capsys, folder, tiny_results, tmp_path, "key 'seed' appears twice")


def test_infinity_is_not_a_number(folder, tiny_results, tmp_path, capsys):
    victim = result_files(folder)[0]
    record = json.loads(victim.read_text())
    record["metrics"]["erasure_score"]["value"] = float("inf")
    victim.write_text(json.dumps(record))
    every_reader(capsys, folder, tiny_results, tmp_path, "Infinity is not a JSON number")


def test_a_symlinked_result_is_refused(folder, tiny_results, tmp_path, capsys):
    outside = tmp_path / "elsewhere.json"
    victim = result_files(folder)[0]
    shutil.copyfile(victim, outside)
    victim.unlink()
    os.symlink(outside, victim)
    out = every_reader(capsys, folder, tiny_results, tmp_path, "a symbolic link in a results "
                       "folder")  # fmt: skip
    assert str(victim) in out


def test_ranks_beyond_the_catalogue_are_a_problem(folder, tiny_results, capsys):
    victim = result_files(folder)[0]
    ev = pd.read_parquet(evidence_path(victim))
    rows = ev["latent_rank"].notna()
    ev.loc[rows, "latent_rank"] = 1e12  # self-reported: "forgotten" far beyond the catalogue
    ev.to_parquet(evidence_path(victim))
    code, out, err = run_cli(capsys, "validate", str(folder), "--task-file",
                             task_file(tiny_results))  # fmt: skip
    assert code == 1 and "Traceback" not in err
    assert "evidence.latent_rank: outside [0, 12) (the catalogue)" in out, out


def test_a_broken_pipe_ends_quietly(folder, tiny_results):
    """`tracer-bench validate DIR | head`: the reader leaves before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmark.app.cli", "validate", str(folder), "--task-file",
         task_file(tiny_results)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy(),
    )  # fmt: skip
    proc.stdout.close()  # nobody reads: the first write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141
    assert err == "", err
