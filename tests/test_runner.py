"""The grid runner: one atomic JSON per cell, skipping finished cells, recording failures."""

from __future__ import annotations

import json
import os

from conftest import SMALL, TINY, toy_rows, toy_task_file, write_atomic

from benchmark.app.runner import run_grid
from benchmark.results.record import failure_path, result_path


def test_grid_writes_skips_and_records_failures(tmp_path, monkeypatch):
    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    task_file = str(toy_task_file(tmp_path, data))
    out = tmp_path / "results"
    counts = run_grid(
        [task_file], ["filter", "ga"], [0], out, progress=False, backbone=TINY, eval_cfg=SMALL
    )
    evals = counts.pop("evaluation_seconds")
    assert counts.pop("workers") == {f"local process {os.getpid()}": 1}
    assert counts == {"done": 2, "skipped": 0, "failed": 0}
    assert set(evals) == {"toy-scary seed 0 filter", "toy-scary seed 0 ga"}
    assert all(v > 0 for v in evals.values())
    record = json.loads(result_path(out, "toy-scary", "filter", 0).read_text())
    assert record["task"]["identity"] == "toy-scary@1.0" and record["seed"] == 0
    assert record["task"]["protocol"] == "last-n" and record["reference"] is False
    assert record["method"]["name"] == "filter" and record["metrics"]["ce@5"]["value"] == 0.0
    assert len(record["backbone"]["checkpoint_sha256"]) == 64
    assert not list(out.rglob(".*"))  # no temporary files left

    again = run_grid(
        [task_file], ["filter", "ga"], [0], out, progress=False, backbone=TINY, eval_cfg=SMALL
    )
    assert again == {"done": 0, "skipped": 2, "failed": 0, "evaluation_seconds": {}, "workers": {}}

    import benchmark.app.runner as runner

    def boom(ctx, method, overrides=None):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(runner, "run_cell", boom)
    failed = run_grid(
        [task_file], ["filter", "npo"], [0], out, progress=False, backbone=TINY, eval_cfg=SMALL
    )
    assert failed.pop("workers") == {f"local process {os.getpid()}": 1}
    assert failed == {"done": 0, "skipped": 1, "failed": 1, "evaluation_seconds": {}}
    err = json.loads(failure_path(out, "toy-scary", "npo", 0).read_text())
    assert "simulated failure" in err["error"]
    assert not result_path(out, "toy-scary", "npo", 0).exists()


def test_the_client_writes_a_cell_once_and_counts_a_lost_group(tmp_path):
    """A rescheduled group that delivers a finished cell again does not rewrite it; a group lost
    after one of its cells counts only its unfinished cells as failed."""
    from tqdm import tqdm

    from benchmark.app.executors import Event
    from benchmark.app.runner import CellOutput, Group, ResultWriter
    from benchmark.results.write import CellFiles

    group = Group("toy.toml", "toy", 0, ("filter", "ga", "npo"))
    counts = {"done": 0, "skipped": 0, "failed": 0, "evaluation_seconds": {}}
    write = ResultWriter(tmp_path, [group], tqdm(disable=True), counts)
    for data in (b"first", b"second"):
        files = CellFiles(result=b'{"run": "%s"}' % data, evidence=data)
        write(Event("cell", group.label, CellOutput("toy", "filter", 0, files, None, 1.0)))
    assert result_path(tmp_path, "toy", "filter", 0).read_bytes() == b'{"run": "first"}'
    assert (tmp_path / "toy/filter/seed0.evidence.parquet").read_bytes() == b"first"
    write(Event("lost", group.label, "KilledWorker"))
    assert (counts["done"], counts["failed"]) == (1, 2)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["filter", "seed0.evidence.parquet",
                                                            "seed0.json", "toy"]  # fmt: skip


def test_more_workers_than_groups_split_a_group_into_parts(tmp_path, monkeypatch):
    """One (task, seed) and two workers: two parts, methods dealt round-robin, the second part
    building the oracle while the first builds the base model (each from its own empty cache
    run); every checkpoint and metric equals the one-process run's (one torch thread in both,
    as in each worker)."""
    import torch

    from benchmark.app.runner import plan_groups

    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    task_file = str(toy_task_file(tmp_path, data))
    methods = ["filter", "ga", "retrain"]
    parts, _ = plan_groups([task_file], methods, [0], tmp_path / "none", False, None, workers=2)
    assert [(g.methods, g.label, g.oracle_first) for g in parts] == [
        (("filter", "retrain"), "toy-scary seed 0 (1/2)", False),
        (("ga",), "toy-scary seed 0 (2/2)", True),
    ]
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache-one"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = run_grid([task_file], methods, [0], tmp_path / "one", progress=False,
                       backbone=TINY, eval_cfg=SMALL)  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache-two"))
    # one thread per process, as in the first run, whatever this machine's core count: thread
    # counts change the bits
    monkeypatch.setattr("benchmark.app.executors.usable_cores", lambda: 2)
    two = run_grid([task_file], methods, [0], tmp_path / "two", progress=False, backbone=TINY,
                   eval_cfg=SMALL, jobs=2)  # fmt: skip
    assert sorted(two["evaluation_seconds"]) == [
        "toy-scary seed 0 (1/2) filter", "toy-scary seed 0 (1/2) retrain",
        "toy-scary seed 0 (2/2) ga",
    ]  # fmt: skip
    assert (one["done"], two["done"], two["failed"]) == (3, 3, 0)
    timing = {"unlearn_seconds", "peak_memory_mib", "speedup_over_retrain"}
    for m in methods:
        a = json.loads(result_path(tmp_path / "one", "toy-scary", m, 0).read_text())
        b = json.loads(result_path(tmp_path / "two", "toy-scary", m, 0).read_text())
        assert a["backbone"]["checkpoint_sha256"] == b["backbone"]["checkpoint_sha256"]
        assert a["oracle"]["checkpoint_sha256"] == b["oracle"]["checkpoint_sha256"]
        assert {k: v for k, v in a["metrics"].items() if k not in timing} == {
            k: v for k, v in b["metrics"].items() if k not in timing
        }
