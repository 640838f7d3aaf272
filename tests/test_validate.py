"""Submission validation and the evidence recomputation: hand-made frames, the real tiny results
folder (clean), and tampered copies of it (each problem named with its file and field)."""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.evidence import evidence_path
from leaderboard.evidence import recompute_metrics
from leaderboard.hubcli import add_parsers
from leaderboard.validate import result_files, validate
from tasks.errors import BenchError

TASK = "toy-scary"


def task_files(results: Path) -> list[Path]:
    """The toy task file the tiny_results fixture was run on (beside the results folder)."""
    return [results.parent / "toy.toml"]


def copy_results(results: Path, tmp_path: Path) -> Path:
    out = tmp_path / "results"
    shutil.copytree(results, out)
    return out


def edit(path: Path, change: Callable[[dict], None]) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, allow_nan=True))


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --- recompute_metrics on a hand-made evidence frame -------------------------------------------


def frame() -> pd.DataFrame:
    inf, nan = math.inf, math.nan
    rows = [
        # pool, collateral, target, topk, rank, original_topk, original_rank, in_forget, lat...
        ("retain_test", True, 1, [1, 2], 0.0, [3, 1], 1.0, [False, True], nan, nan, nan),
        ("retain_test", False, 4, [5, 6], inf, [4, 5], 0.0, [False, False], nan, nan, nan),
        ("forget_test", False, 2, [7, 2], 1.0, [2, 7], 0.0, [True, True], nan, nan, nan),
        ("forget_set", False, 2, [1, 3], inf, [2, 1], 0.0, [False, False], 0.0, 0.0, 0.0),
        ("forget_set", False, 7, [7, 1], 0.0, [7, 3], 0.0, [True, False], 12.0, 1.0, 9.0),
    ]
    cols = ["pool", "collateral", "target", "topk", "rank", "original_topk", "original_rank",
            "topk_in_forget", "latent_rank", "original_latent_rank", "relearn_rank"]  # fmt: skip
    df = pd.DataFrame(rows, columns=cols)
    df.insert(2, "position", np.arange(len(df), dtype=np.int64))
    return df


def test_recompute_by_hand():
    m = recompute_metrics(frame(), [1, 2])
    assert m["retained_recall@1"] == 0.5 and m["retained_recall@2"] == 0.5
    assert m["retained_ndcg@2"] == 0.5  # rank 0 -> 1, rank inf -> 0
    # original: ranks 1 and 0 -> ndcg@2 = (1/log2(3) + 1) / 2
    assert m["retained_ndcg_ratio@2"] == pytest.approx(0.5 / ((1 / np.log2(3) + 1) / 2))
    assert m["retained_recall_ratio@1"] == 1.0  # 0.5 / 0.5
    assert m["collateral_recall@1"] == 1.0
    assert math.isnan(m["collateral_ndcg_ratio@1"])  # the original misses it at @1
    assert m["forget_test_recall@1"] == 0.0 and m["forget_test_ndcg@2"] == 1 / np.log2(3)
    assert m["forget_set_recall@1"] == 0.5
    assert m["fe@1"] == 0.5  # 1 - 0.5 / 1
    assert m["ce@1"] == pytest.approx(1 / 3) and m["ce@2"] == pytest.approx(3 / 6)
    assert m["latent_forget_recall@1"] == 0.5 and m["latent_forget_recall@2"] == 0.5
    # original latent ranks 0 and 1: recall@1 0.5, recall@2 1
    assert m["fe_latent@1"] == 0.0 and m["fe_latent@2"] == 0.5
    assert m["relearn_forget_recall@1"] == 0.5
    assert m["latent_forget_mean_rank"] == 7.0  # (1 + 13) / 2
    # headline at @10: fe@10 = 0.5, fe_latent@10 = 0.5, retained ndcg ratio@10 as at @2
    assert m["forgetting_part"] == 0.5
    assert m["utility_part"] == pytest.approx(m["retained_ndcg_ratio@2"])
    u = m["utility_part"]
    assert m["erasure_score"] == pytest.approx(2 * 0.5 * u / (0.5 + u))


def test_recompute_headline_edge_cases():
    df = frame()
    df.loc[df["pool"] == "forget_set", ["rank", "latent_rank"]] = math.inf  # all forgotten
    df.loc[df["pool"] == "retain_test", "rank"] = df.loc[df["pool"] == "retain_test",
                                                         "original_rank"]  # fmt: skip
    m = recompute_metrics(df, [2])
    assert m["fe@2"] == 1.0 and m["forgetting_part"] == 1.0 and m["utility_part"] == 1.0
    assert m["erasure_score"] == 1.0
    df.loc[df["pool"] == "retain_test", "rank"] = math.inf  # utility wrecked
    assert recompute_metrics(df, [2])["erasure_score"] == 0.0


# --- the real tiny results folder ----------------------------------------------------------------


def test_fixture_has_evidence_that_agrees_with_json(tiny_results):
    files = result_files(tiny_results)
    assert len(files) == 6
    compared = 0
    for f in files:
        record = json.loads(f.read_text())["metrics"]
        ev = pd.read_parquet(evidence_path(f))
        for name, value in recompute_metrics(ev, [1, 2, 5]).items():
            if name in record:
                want = record[name]["value"]
                assert math.isclose(value, want, abs_tol=1e-9) or (
                    math.isnan(value) and math.isnan(want)
                ), (f, name, value, want)
                compared += 1
    assert compared >= 6 * 40


def test_clean_fixture_validates_clean(tiny_results, capsys):
    assert validate(tiny_results, task_files(tiny_results)) == []
    one = result_files(tiny_results)[0]
    assert validate(one, task_files(tiny_results)) == []
    argv = ["validate", str(tiny_results), "--task-file", str(task_files(tiny_results)[0])]
    assert cli(argv) == 0
    assert "valid" in capsys.readouterr().out


def test_unknown_task_without_its_task_file(tiny_results):
    problems = validate(result_files(tiny_results)[0])
    assert [(p.field, "unknown task" in p.message) for p in problems] == [("task.identity", True)]


def test_standard_task_identity_and_data_hash(tiny_results, tmp_path, ml100k_horror):
    """A record claiming a standard task is checked against that task as prepared here."""
    f = copy_results(tiny_results, tmp_path) / TASK / "ga" / "seed0.json"
    spec = ml100k_horror.spec
    claim = {"name": spec.name, "version": spec.version, "identity": spec.identity}
    edit(f, lambda r: r["task"].update(claim, data_hash=ml100k_horror.content_hash))
    assert validate(f) == []
    edit(f, lambda r: r["task"].update(data_hash="f" * 64))
    [problem] = validate(f)
    assert problem.field == "task.data_hash" and ml100k_horror.content_hash in problem.message
    edit(f, lambda r: r["task"].update(version="9.9", identity=f"{spec.name}@9.9"))
    assert [p.field for p in validate(f)] == ["task.identity"]


def test_misplaced_file(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    (root / TASK / "ga").rename(root / TASK / "npo")
    found = validate(root, task_files(tiny_results))
    assert {(Path(p.file).parent.name, p.field) for p in found} == {("npo", "")}
    assert all("misplaced" in p.message for p in found) and len(found) == 2


def _problems(root: Path, tiny_results: Path) -> set[tuple[str, str]]:
    return {(Path(p.file).name, p.field) for p in validate(root, task_files(tiny_results))}


def test_tampered_erasure_score(tiny_results, tmp_path, capsys):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed1.json"
    edit(f, lambda r: r["metrics"]["erasure_score"].update(value=0.99, ci_high=1.0, ci_low=0.0))
    problems = validate(root, task_files(tiny_results))
    assert problems and {(p.file, p.field) for p in problems} == {
        (str(f), "metrics.erasure_score.value")
    }
    assert any("harmonic" in p.message for p in problems)  # against its parts
    assert any("evidence" in p.message for p in problems)  # against the evidence
    argv = ["validate", str(root), "--task-file", str(task_files(tiny_results)[0])]
    assert cli(argv) == 1
    assert f"{f}: metrics.erasure_score.value: " in capsys.readouterr().out


def test_wrong_data_hash(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    edit(root / TASK / "ga" / "seed0.json", lambda r: r["task"].update(data_hash="0" * 64))
    assert _problems(root, tiny_results) == {("seed0.json", "task.data_hash")}


def test_missing_seed(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "filter" / "seed1.json"
    f.unlink()
    evidence_path(f).unlink()
    problems = validate(root, task_files(tiny_results))
    assert [(p.file, p.field) for p in problems] == [(str(f.parent), "seed")]
    assert "missing seeds [1]" in problems[0].message


@pytest.mark.parametrize(
    "metric, stat, field",
    [
        ("fe@5", {"value": 1.5, "ci_low": 1.0, "ci_high": 2.0}, "metrics.fe@5.value"),
        ("ce@1", {"value": -0.1, "ci_low": -0.2, "ci_high": 0.0}, "metrics.ce@1.value"),
        ("retained_ndcg_ratio@2", {"value": -1.0, "ci_low": -2.0, "ci_high": 0.0},
         "metrics.retained_ndcg_ratio@2.value"),
        ("latent_forget_mean_rank", {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
         "metrics.latent_forget_mean_rank.value"),
        ("unlearn_seconds", {"n": -1}, "metrics.unlearn_seconds.n"),
        ("code_purity_ratio", {"value": math.inf}, "metrics.code_purity_ratio.value"),
        ("retained_recall@5", {"ci_low": -1.0, "ci_high": -0.5}, "metrics.retained_recall@5.value"),
    ],
)  # fmt: skip
def test_out_of_range(tiny_results, tmp_path, metric, stat, field):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed1.json"
    edit(f, lambda r: r["metrics"][metric].update(stat))
    assert ("seed1.json", field) in _problems(root, tiny_results)


def test_schema_and_hash_problems(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    d = root / TASK / "ga"

    def bad_method(r: dict) -> None:
        r["method"]["config"]["extra_knob"] = 123.0

    def unknown_metric(r: dict) -> None:
        r["metrics"]["bogus@5"] = dict(r["metrics"]["ce@5"])

    edit(d / "seed0.json", bad_method)
    edit(d / "seed1.json", unknown_metric)
    edit(root / TASK / "filter" / "seed0.json", lambda r: r.pop("seed"))
    edit(root / TASK / "filter" / "seed1.json", lambda r: r.update(schema_version=7))
    edit(root / TASK / "tracer" / "seed0.json", lambda r: r["environment"].update(threads="2"))
    (root / TASK / "tracer" / "seed1.json").write_text("{not json")
    found = {(Path(p.file).parent.name, Path(p.file).name, p.field) for p in
             validate(root, task_files(tiny_results))}  # fmt: skip
    assert found == {
        ("ga", "seed0.json", "method.config_hash"),
        ("ga", "seed1.json", "metrics.bogus@5"),
        ("filter", "seed0.json", "seed"),
        ("filter", "seed1.json", "schema_version"),
        ("tracer", "seed0.json", "environment.threads"),
        ("tracer", "seed1.json", ""),
    }


def test_evidence_missing_or_tampered(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    evidence_path(root / TASK / "ga" / "seed0.json").unlink()
    # tracer seed 0: one retain-test hit removed from its top-K list (rank and list consistent)
    ev_path = evidence_path(root / TASK / "tracer" / "seed0.json")
    ev = pd.read_parquet(ev_path)
    hits = ev.index[(ev["pool"] == "retain_test") & (ev["rank"] == 0)]
    assert len(hits), "the fixture's tracer model should serve some retain-test targets first"
    i = hits[0]
    ev.at[i, "topk"] = np.where(ev.at[i, "topk"] == ev.at[i, "target"], -1, ev.at[i, "topk"])
    ev.at[i, "rank"] = math.inf
    ev.to_parquet(ev_path, index=False)
    # filter seed 1: a rank column that does not match its list
    ev_path = evidence_path(root / TASK / "filter" / "seed1.json")
    ev = pd.read_parquet(ev_path)
    ev.loc[0, "original_rank"] = 3.0 if ev.loc[0, "original_rank"] != 3.0 else 2.0
    ev.to_parquet(ev_path, index=False)
    found = {(Path(p.file).parent.name, p.field) for p in validate(root, task_files(tiny_results))}
    assert ("ga", "evidence") in found
    assert ("tracer", "metrics.retained_recall@1.value") in found
    assert ("tracer", "metrics.retained_ndcg@5.value") in found
    assert ("filter", "evidence.original_rank") in found
    assert {f for f in found if f[0] not in ("ga", "tracer", "filter")} == set()


def test_bad_paths(tmp_path):
    with pytest.raises(BenchError, match="no such"):
        validate(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    [problem] = validate(tmp_path / "empty")
    assert "no result files" in problem.message
