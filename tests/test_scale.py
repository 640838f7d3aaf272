"""`tracer-bench perf --scale`: every stage measured by the harness's own functions on a real
(toy) task in a child process, and the side-by-side table with growth over the previous task."""

from __future__ import annotations

from conftest import toy_rows, toy_task_file, write_atomic

from benchmark.app.scale import EVALUATION, STAGES, measure_in_child, scale_table


def test_measure_and_table(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))
    data = write_atomic(tmp_path / "d", *toy_rows(n_users=30, n_items=12, per_user=9))
    row = measure_in_child(str(toy_task_file(tmp_path, data)), 1)
    assert (row["users"], row["items"]) == (30, 12)
    assert set(row["seconds"]) == set(STAGES) and all(s > 0 for s in row["seconds"].values())
    bigger = {**row, "task": "bigger", "users": 60,
              "seconds": {k: 3 * v for k, v in row["seconds"].items()}}  # fmt: skip
    table = scale_table([row, bigger]).splitlines()
    users_items = next(line for line in table if line.startswith("users x items"))
    assert "(2.0x)" in users_items
    for stage in ("prepare", "bootstrap", "a cell's evaluation"):
        line = next(line for line in table if line.startswith(stage))
        assert line.rstrip().endswith("(3.0x)"), line
    evaluation = next(line for line in table if line.startswith("a cell's evaluation"))
    assert f"{sum(row['seconds'][s] for s in EVALUATION):.1f} s" in evaluation
