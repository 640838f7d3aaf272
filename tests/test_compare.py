"""`compare`: per (task, method) and metric, mean ± seed std on both sides; a regression only when
B − A is beyond the tolerance in the bad direction AND significant (the paired (seed, example)
bootstrap of the evidence; without evidence, non-overlapping per-seed-mean JSON intervals); exit
status 1 on regression (CI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import N_FORGET, cli, copy_results, frame, matched, record, write_cell

from benchmark.metrics.bootstrap import paired_differences
from benchmark.metrics.evidence import Evidence, evidence_path, read_evidence
from benchmark.metrics.registry import compute
from leaderboard.compare import compare, parse_tolerances
from leaderboard.table import find_result_files
from tasks.errors import BenchError


def write_set(
    root: Path,
    values: dict[tuple[str, str], list[dict[str, float]]],
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """A results folder without evidence: for each (task, method) one result file per seed."""
    for (task, method), seeds in values.items():
        for seed, metrics in enumerate(seeds):
            rec = record(task, method, seed, metrics, version="1", intervals=intervals)
            path = root / task / method / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec))
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
    assert es.basis == "json intervals"  # no evidence: the per-seed-mean intervals (0.7 vs 0.65)
    assert es.status == "REGRESSION" and es.regression  # higher is better, went down
    assert ce.delta == pytest.approx(0.0) and ce.status == "ok"
    assert "REGRESSION" in result.table() and "0.7000 ± 0.1414" in result.table()


def test_overlapping_json_intervals_are_not_a_regression(tmp_path):
    wide = {"erasure_score": (0.5, 0.9)}
    a = write_set(tmp_path / "a", {("t", "m"): [{"erasure_score": 0.75}]}, wide)
    b = write_set(tmp_path / "b", {("t", "m"): [{"erasure_score": 0.70}]}, wide)
    [row] = compare(a, b, metrics=["erasure_score"]).rows
    assert row.status == "within noise" and not row.regression
    assert "A [0.5000, 0.9000] B [0.5000, 0.9000]" in row.interval_text()


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
        ("ce_excess@10", math.nan, math.nan, 0.02, "n/a"),
        ("ce_excess@10", 0.5, math.nan, 0.02, "missing in B"),
        ("ce_excess@10", math.nan, 0.5, 0.02, "new in B"),
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
    assert parse_tolerances(["0.05", "ce@10=0.1", "erasure_score=0"]) == (
        0.05,
        {"ce@10": 0.1, "erasure_score": 0.0},
    )
    for bad in (["x"], ["-1"], ["bogus=0.1"], ["ce=abc"]):
        with pytest.raises(BenchError):
            parse_tolerances(bad)


def test_bad_folders_and_metrics(tmp_path):
    a, b = pair(tmp_path, [{"erasure_score": 0.5}], [{"erasure_score": 0.5}])
    with pytest.raises(BenchError, match="does not exist"):
        compare(a, tmp_path / "nowhere")
    with pytest.raises(BenchError, match="unknown metric"):
        compare(a, b, metrics=["bogus@10"])


def test_noise_is_not_a_regression_a_real_drop_is(tmp_path):
    """B's 'same' method moves examples both ways (its mean drops beyond the tolerance, within
    the noise); B's 'dropped' method loses 80 of 320 matched examples: only that is flagged."""
    noisy = matched(320) ^ (np.arange(N_FORGET) % 10 == 0)  # 32 flipped down, 8 up ...
    noisy[-16:] = True  # ... and 15 more up (390 was): -9 net of 400
    for seed in (0, 1):
        for method in ("same", "dropped"):
            write_cell(tmp_path / "a", method, seed, frame(matched(320)))
        write_cell(tmp_path / "b", "same", seed, frame(noisy))
        write_cell(tmp_path / "b", "dropped", seed, frame(matched(240)))
    result = compare(tmp_path / "a", tmp_path / "b", tolerance=0.01, metrics=["oracle_match"])
    same, dropped = sorted(result.rows, key=lambda r: r.method != "same")
    assert same.delta == pytest.approx(-9 / 400) and same.delta < -same.tolerance
    assert same.basis == "paired, seeds 0 1" and same.diff[1] < 0 < same.diff[2]
    assert same.status == "within noise" and not same.regression
    assert dropped.delta == pytest.approx(-0.2) and dropped.diff[2] < 0
    assert dropped.status == "REGRESSION"
    assert [r.method for r in result.regressions] == ["dropped"]
    # the interval is the metrics module's paired difference over the shared seeds
    evs = {
        side: [Evidence.from_frame(read_evidence(tmp_path / side / "toy" / "same" /
                                                 f"seed{s}.evidence.parquet")) for s in (0, 1)]
        for side in ("a", "b")
    }  # fmt: skip
    want = paired_differences(evs["a"], evs["b"], ["oracle_match"])["oracle_match"]
    assert same.diff == pytest.approx(want)
    assert "[-0.0" in result.table() and "within noise" in result.table()
    # without the evidence, degenerate JSON intervals cannot tell noise from a drop
    for f in (tmp_path / "b").rglob("*.parquet"):
        f.unlink()
    result = compare(tmp_path / "a", tmp_path / "b", tolerance=0.01, metrics=["oracle_match"])
    assert {r.method: r.status for r in result.rows} == {"same": "REGRESSION",
                                                        "dropped": "REGRESSION"}  # fmt: skip


def test_real_results_against_themselves_and_a_worse_copy(tiny_results, tmp_path, capsys):
    assert cli(["compare", str(tiny_results), str(tiny_results)]) == 0
    worse = copy_results(tiny_results, tmp_path)
    for f in find_result_files(worse)[0]:
        if f.parent.name == "tracer":  # tracer now fills every test slot with forget items
            ev_path = evidence_path(f)
            df = read_evidence(ev_path)
            df["forget_bits"] = np.where(df["pool"] != "forget_set", 2**10 - 1, df["forget_bits"])
            df.to_parquet(ev_path)
            rec = json.loads(f.read_text())
            rec["metrics"]["ce@5"]["value"] = compute(Evidence.from_frame(df), "ce@5")
            f.write_text(json.dumps(rec))
    result = compare(tiny_results, worse, metrics=["ce@5", "forget_set_recall@5"], n_boot=200)
    bad = [(r.method, r.metric) for r in result.regressions]
    assert bad == [("tracer", "ce@5")]
    assert len(result.rows) == 6  # filter, ga, tracer
    assert all(r.basis == "paired, seeds 0 1" for r in result.rows)
    assert cli(["compare", str(tiny_results), str(worse), "--metric", "ce@5", "--n-boot",
                "100"]) == 1  # fmt: skip
