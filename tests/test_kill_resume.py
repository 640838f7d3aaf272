"""A grid run killed with SIGKILL at any moment and started again finishes with no result lost,
duplicated or corrupt: real subprocesses, real kills."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import MARK, survivors, toy_rows, toy_task_file, write_atomic

from benchmark.metrics.evidence import evidence_path
from benchmark.results.record import result_path

TESTS = Path(__file__).parent
METHODS = ["filter", "ga", "graddiff", "tracer"]
SEEDS = [0, 1]

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import TINY
from conftest import SMALL
from benchmark.app.runner import run_grid
counts = run_grid([{task!r}], {methods!r}, {seeds!r}, {out!r}, progress=False,
                  backbone=TINY, eval_cfg=SMALL, jobs={jobs})
print(counts)
"""


def _start(task_file: Path, out: Path, cache: Path, jobs: int) -> subprocess.Popen:
    code = SCRIPT.format(
        tests=str(TESTS), task=str(task_file), methods=METHODS, seeds=SEEDS, out=str(out), jobs=jobs
    )
    env = {**os.environ, "TRACER_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           MARK: str(out)}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _results(out: Path) -> list[Path]:
    return sorted(out.rglob("seed*.json"))


def _kill_after(proc: subprocess.Popen, out: Path, n_results: int, extra: float) -> None:
    """SIGKILL once `n_results` results exist, `extra` seconds later (mid-cell or mid-write)."""
    deadline = time.time() + 300
    while len([p for p in _results(out) if not p.name.endswith("failed.json")]) < n_results:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no progress"
        time.sleep(0.05)
    time.sleep(extra)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigkill_and_resume_finishes_the_grid(tmp_path, jobs):
    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    task_file = toy_task_file(tmp_path, data)
    out, cache = tmp_path / "results", tmp_path / "cache"

    # kill 1: right after the first result lands; kill 2: somewhere inside a later cell
    _kill_after(_start(task_file, out, cache, jobs), out, 1, 0.0)
    _kill_after(_start(task_file, out, cache, jobs), out, 3, 0.7)
    deadline = time.time() + 10  # pool workers notice their dead parent within a second
    while survivors(out) and time.time() < deadline:
        time.sleep(0.2)
    assert survivors(out) == [], "processes of the killed runs are still alive"
    before = {p: p.stat().st_mtime_ns for p in _results(out)}
    time.sleep(1.0)
    assert {p: p.stat().st_mtime_ns for p in _results(out)} == before, "orphans still writing"

    final = _start(task_file, out, cache, jobs)
    stdout, stderr = final.communicate(timeout=600)
    assert final.returncode == 0, stderr
    counts = ast.literal_eval(stdout.strip().splitlines()[-1])  # the printed counts dict
    assert counts["failed"] == 0 and counts["skipped"] >= 3

    expected = {result_path(out, "toy-scary", m, s) for m in METHODS for s in SEEDS}
    assert set(_results(out)) == expected  # nothing lost, nothing extra, no failure files
    for path in expected:
        record = json.loads(path.read_text())  # parses: not truncated
        assert record["method"]["name"] == path.parent.name and record["seed"] in SEEDS
        ev = pd.read_parquet(evidence_path(path))
        n = {p: record["metrics"][f"{p}_recall@1"]["n"] for p in ("retained", "forget_test",
                                                                    "forget_set")}  # fmt: skip
        assert len(ev) == record["evidence"]["rows"] == sum(n.values())
    leftovers = [p for p in out.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []
