"""`compare`: per (task, method) and metric, mean ± seed std on both sides, direction-aware
regressions beyond a tolerance, exit status 1 on regression (CI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from test_validate import cli, copy_results, edit

from leaderboard.compare import compare, parse_tolerances
from leaderboard.validate import result_files
from tasks.errors import BenchError


def stat(value: float) -> dict:
    return {"value": value, "ci_low": value, "ci_high": value, "n": 10}


def write_set(root: Path, values: dict[tuple[str, str], list[dict[str, float]]]) -> Path:
    """A minimal results folder: for each (task, method) one result file per seed."""
    for (task, method), seeds in values.items():
        for seed, metrics in enumerate(seeds):
            record = {
                "harness_version": "0.1.0",
                "task": {"name": task, "version": "1", "identity": f"{task}@1", "data_hash": "d"},
                "method": {"name": method, "version": "1", "config": {}, "config_hash": "c"},
                "backbone": {"config": {}, "config_hash": "b", "checkpoint_sha256": "s"},
                "seed": seed,
                "metrics": {k: stat(v) for k, v in metrics.items()},
            }
            path = root / task / method / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
    return root


def pair(tmp_path: Path, a: list[dict], b: list[dict]) -> tuple[Path, Path]:
    return (
        write_set(tmp_path / "a", {("t", "tracer"): a}),
        write_set(tmp_path / "b", {("t", "tracer"): b}),
    )


def test_mean_std_and_direction(tmp_path):
    a, b = pair(
        tmp_path,
        [{"erasure_score": 0.8, "ce@10": 0.10}, {"erasure_score": 0.6, "ce@10": 0.10}],
        [{"erasure_score": 0.7, "ce@10": 0.20}, {"erasure_score": 0.6, "ce@10": 0.00}],
    )
    result = compare(a, b, metrics=["erasure_score", "ce@10"])
    es, ce = result.rows
    assert es.a[0] == pytest.approx(0.7) and es.a[1] == pytest.approx(math.sqrt(0.02))
    assert es.b[0] == pytest.approx(0.65) and es.delta == pytest.approx(-0.05)
    assert es.status == "REGRESSION" and es.regression  # higher is better, went down
    assert ce.delta == pytest.approx(0.0) and ce.status == "ok"
    assert "REGRESSION" in result.table() and "0.7000 ± 0.1414" in result.table()


@pytest.mark.parametrize(
    "metric, a, b, tol, status",
    [
        ("erasure_score", 0.70, 0.69, 0.02, "ok"),  # within tolerance
        ("erasure_score", 0.70, 0.60, 0.02, "REGRESSION"),
        ("erasure_score", 0.70, 0.80, 0.02, "better"),
        ("ce@10", 0.10, 0.20, 0.02, "REGRESSION"),  # lower is better: going up regresses
        ("ce@10", 0.20, 0.10, 0.02, "better"),
        ("ce@10", 0.10, 0.11, 0.02, "ok"),
        ("latent_forget_recall@10", 0.1, 0.5, 0.5, "ok"),
        ("fe@10", math.nan, math.nan, 0.02, "n/a"),
        ("fe@10", 0.5, math.nan, 0.02, "missing in B"),
    ],
)
def test_direction_aware_status(tmp_path, metric, a, b, tol, status):
    da, db = pair(tmp_path, [{metric: a}], [{metric: b}])
    [row] = compare(da, db, tolerance=tol, metrics=[metric]).rows
    assert row.status == status
    argv = ["compare", str(da), str(db), "--metric", metric, "--tolerance", str(tol)]
    assert cli(argv) == (1 if status in ("REGRESSION", "missing in B") else 0)


def test_per_metric_tolerance_and_unmatched_pairs(tmp_path, capsys):
    a = write_set(
        tmp_path / "a",
        {("t", "tracer"): [{"erasure_score": 0.7, "ce@10": 0.1}], ("t", "ga"): [{}]},
    )
    b = write_set(
        tmp_path / "b",
        {("t", "tracer"): [{"erasure_score": 0.6, "ce@10": 0.1}], ("u", "ga"): [{}]},
    )
    argv = ["compare", str(a), str(b), "--metric", "erasure_score", "--metric", "ce@10"]
    assert cli(argv) == 1
    assert cli([*argv, "--tolerance", "0.02", "--tolerance", "erasure_score=0.15"]) == 0
    out = capsys.readouterr().out
    assert "only in A (not compared): t@1 ga" in out and "only in B (not compared): u@1 ga" in out
    result = compare(a, b, metrics=["erasure_score"], per_metric={"erasure_score": 0.15})
    assert [(r.task, r.method) for r in result.rows] == [("t@1", "tracer")]


def test_tolerance_parsing():
    assert parse_tolerances(["0.05", "fe@10=0.1", "erasure_score=0"]) == (
        0.05,
        {"fe@10": 0.1, "erasure_score": 0.0},
    )
    for bad in (["x"], ["-1"], ["bogus=0.1"], ["fe=abc"]):
        with pytest.raises(BenchError):
            parse_tolerances(bad)


def test_bad_folders_and_metrics(tmp_path):
    a, b = pair(tmp_path, [{"erasure_score": 0.5}], [{"erasure_score": 0.5}])
    with pytest.raises(BenchError, match="does not exist"):
        compare(a, tmp_path / "nowhere")
    with pytest.raises(BenchError, match="unknown metric"):
        compare(a, b, metrics=["bogus@10"])


def test_real_results_against_themselves_and_a_worse_copy(tiny_results, tmp_path, capsys):
    assert cli(["compare", str(tiny_results), str(tiny_results)]) == 0
    worse = copy_results(tiny_results, tmp_path)
    for f in result_files(worse):
        if f.parent.name == "tracer":
            edit(
                f, lambda r: r["metrics"]["ce@5"].update(value=r["metrics"]["ce@5"]["value"] + 0.1)
            )
    result = compare(tiny_results, worse, metrics=["ce@5", "fe@5"])
    bad = [(r.method, r.metric) for r in result.regressions]
    assert bad == [("tracer", "ce@5")]
    assert len(result.rows) == 6
    assert cli(["compare", str(tiny_results), str(worse), "--metric", "ce@5"]) == 1
