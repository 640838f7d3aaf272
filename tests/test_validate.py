"""Submission validation (protocol 2.1): the real tiny results folder validates clean, and tampered
copies of it are caught, each problem named with its file and field. The checks run through the
harness's own modules (schema, evidence, metrics): nothing here re-implements a metric."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import copy_results, edit, task_files

from benchmark import __version__
from benchmark.app.cli import add_parsers
from benchmark.app.verify import reference_frame
from benchmark.metrics.bootstrap import metric_stats
from benchmark.metrics.evidence import Evidence, evidence_path
from benchmark.metrics.protocol import EvalConfig
from benchmark.metrics.registry import METRICS, compute_all, evidence_metric_names
from benchmark.results.record import ResultRecord, result_files
from leaderboard.validate import metric_range, reference_problems, validate
from tasks.errors import BenchError

TASK = "toy-scary"


def edit_evidence(json_path: Path, change: Callable[[pd.DataFrame], None]) -> pd.DataFrame:
    """Change a result's evidence parquet in place (its JSON untouched); returns the new frame."""
    path = evidence_path(json_path)
    df = pd.read_parquet(path)
    change(df)
    df.to_parquet(path, index=False)
    return df


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def found(root: Path, tiny_results: Path) -> set[tuple[str, str, str]]:
    """(method folder, file name, field) of every problem."""
    return {
        (Path(p.file).parent.name, Path(p.file).name, p.field)
        for p in validate(root, task_files(tiny_results))
    }


def push_latent_ranks_down(df: pd.DataFrame) -> None:
    """Forget-set targets sent to the bottom of the latent ranking (a plausible edit: whole ranks,
    inside the catalogue)."""
    fs = df["pool"] == "forget_set"
    df.loc[fs, "latent_rank"] = (df.loc[fs, "n_candidates"] - 1).astype(np.float64)


# --- the clean folder ---------------------------------------------------------------------------


def test_clean_fixture_validates_clean(tiny_results, capsys):
    assert len(result_files(tiny_results)) == 6
    assert validate(tiny_results, task_files(tiny_results)) == []
    one = result_files(tiny_results)[0]
    assert validate(one, task_files(tiny_results)) == []
    argv = ["validate", str(tiny_results), "--task-file", str(task_files(tiny_results)[0])]
    assert cli(argv) == 0
    assert "valid" in capsys.readouterr().out


def test_every_evidence_metric_is_recorded_and_recomputed(tiny_results):
    """What validate relies on: the fixture's JSONs carry every evidence metric, and the registry
    gives back each recorded value from the evidence (so an edit of any of them is caught)."""
    for f in result_files(tiny_results):
        metrics = json.loads(f.read_text())["metrics"]
        names = evidence_metric_names([1, 5, 10])
        values = compute_all(Evidence.from_frame(pd.read_parquet(evidence_path(f))), names)
        assert set(names) <= set(metrics)
        for name in names:
            want = metrics[name]["value"]
            assert math.isclose(values[name], want, abs_tol=1e-9) or (
                math.isnan(values[name]) and math.isnan(want)
            ), (f, name)


def test_unknown_task_without_its_task_file(tiny_results):
    problems = validate(result_files(tiny_results)[0])
    assert [(p.field, "unknown task" in p.message) for p in problems] == [("task.identity", True)]


def test_standard_task_identity_and_data_hash(tiny_results, tmp_path, ml100k_horror):
    """A record claiming a standard task is checked against that task as prepared here."""
    f = copy_results(tiny_results, tmp_path) / TASK / "ga" / "seed0.json"
    spec = ml100k_horror.spec
    claim = {"name": spec.name, "version": spec.version, "identity": spec.identity}
    protocol = json.loads(json.dumps(dataclasses.asdict(EvalConfig(seed=0))))  # its protocol
    edit(f, lambda r: r["task"].update(claim, data_hash=ml100k_horror.content_hash))
    edit(f, lambda r: r.update(evaluation=protocol))
    # the claim passes the identity checks, but its evidence is not that task's examples
    assert [p.field for p in validate(f)] == ["evidence.position"]
    edit(f, lambda r: r["task"].update(data_hash="f" * 64))
    [problem] = validate(f)
    assert problem.field == "task.data_hash" and ml100k_horror.content_hash in problem.message
    edit(f, lambda r: r["task"].update(version="9.9", identity=f"{spec.name}@9.9"))
    assert [p.field for p in validate(f)] == ["task.identity"]


# --- the record: values, names, ranges, schema ----------------------------------------------------


@pytest.mark.parametrize(
    "metric",
    ["erasure_score", "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
     "latent_ks", "ce_excess@5", "relearn_excess@10", "retained_ndcg@10",
     "oracle_latent_forget_mean_rank"],
)  # fmt: skip
def test_edited_metric_value_is_caught(tiny_results, tmp_path, capsys, metric):
    """A value moved inside its range and its interval is caught by recomputation alone."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed1.json"
    stat = json.loads(f.read_text())["metrics"][metric]
    low, high = metric_range(metric)
    new = stat["value"] + 0.25 if stat["value"] + 0.25 <= high else stat["value"] - 0.25
    assert low <= new <= high
    wide = high if math.isfinite(high) else 1e9  # an infinite bound is a problem of its own
    edit(f, lambda r: r["metrics"][metric].update(value=new, ci_low=low, ci_high=wide))
    problems = validate(root, task_files(tiny_results))
    assert [(p.file, p.field) for p in problems] == [(str(f), f"metrics.{metric}.value")]
    assert "the evidence gives" in problems[0].message
    argv = ["validate", str(root), "--task-file", str(task_files(tiny_results)[0])]
    assert cli(argv) == 1
    assert f"{f}: metrics.{metric}.value: " in capsys.readouterr().out


def test_headline_checked_through_its_parts(tiny_results, tmp_path):
    """erasure_score = harmonic(forgetting_part, utility_part): the message names the formula,
    which comes from the registry (validate has none of its own)."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed0.json"
    edit(f, lambda r: r["metrics"]["erasure_score"].update(value=0.999, ci_low=0, ci_high=1))
    [problem] = validate(root, task_files(tiny_results))
    assert METRICS["erasure_score"].description in problem.message
    assert "harmonic" in problem.message


@pytest.mark.parametrize(
    "metric, stat, field",
    [
        ("served_forgetting", {"value": 1.5, "ci_low": 1.0, "ci_high": 2.0},
         "metrics.served_forgetting.value"),
        ("oracle_match", {"value": -0.1, "ci_low": -0.2, "ci_high": 0.0},
         "metrics.oracle_match.value"),
        ("latent_ks", {"value": 1.1, "ci_low": 0.0, "ci_high": 2.0}, "metrics.latent_ks.value"),
        ("ce@1", {"value": -0.1, "ci_low": -0.2, "ci_high": 0.0}, "metrics.ce@1.value"),
        ("ce_excess@5", {"value": -1.5, "ci_low": -2.0, "ci_high": 0.0},
         "metrics.ce_excess@5.value"),
        ("relearn_excess@10", {"value": 1.5, "ci_low": 0.0, "ci_high": 2.0},
         "metrics.relearn_excess@10.value"),
        ("retained_ndcg_ratio@5", {"value": -1.0, "ci_low": -2.0, "ci_high": 0.0},
         "metrics.retained_ndcg_ratio@5.value"),
        ("retained_recall_oracle_ratio@10", {"value": -0.5, "ci_low": -1.0, "ci_high": 0.0},
         "metrics.retained_recall_oracle_ratio@10.value"),
        ("oracle_latent_forget_mean_rank", {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
         "metrics.oracle_latent_forget_mean_rank.value"),
        ("forgetting_part", {"value": 1.2, "ci_low": 1.0, "ci_high": 1.5},
         "metrics.forgetting_part.value"),
        ("unlearn_seconds", {"n": -1}, "metrics.unlearn_seconds.n"),
        ("peak_memory_mib", {"value": -3.0}, "metrics.peak_memory_mib.value"),
        # Infinity is no JSON number: the file is refused by the reader, before any field
        ("code_purity_ratio", {"value": math.inf}, ""),
        ("retain_geometry_spearman", {"value": 1.5}, "metrics.retain_geometry_spearman.value"),
        ("retained_recall@5", {"ci_low": -1.0, "ci_high": -0.5},
         "metrics.retained_recall@5.value"),
    ],
)  # fmt: skip
def test_out_of_range(tiny_results, tmp_path, metric, stat, field):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed1.json"
    edit(f, lambda r: r["metrics"][metric].update(stat))
    assert ("ga", "seed1.json", field) in found(root, tiny_results)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda r: r["metrics"]["erasure_score"].update(value=math.nan, ci_low=math.nan,
                                                        ci_high=math.nan),
         "metrics.erasure_score.value"),
        (lambda r: r["metrics"]["utility_part"].update(value=math.nan),
         "metrics.utility_part.value"),
        (lambda r: r["metrics"]["retained_recall@5"].update(ci_low=-math.inf), ""),
        (lambda r: r["cost"].update(unlearn_seconds=math.inf), ""),
        (lambda r: r["cost"].update(peak_memory_mib=math.nan), "cost.peak_memory_mib"),
    ],
)  # fmt: skip
def test_non_finite_values_where_finite_ones_are_required(tiny_results, tmp_path, change, field):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed1.json"
    edit(f, change)
    assert ("ga", "seed1.json", field) in found(root, tiny_results)


def test_metric_ranges():
    assert metric_range("erasure_score") == (0.0, 1.0)
    assert metric_range("oracle_match") == (0.0, 1.0)
    assert metric_range("ce@10") == (0.0, 1.0)
    assert metric_range("ce_excess@10") == (-1.0, 1.0)
    assert metric_range("relearn_excess@1") == (-1.0, 1.0)
    assert metric_range("latent_forget_mean_rank") == (1.0, math.inf)
    assert metric_range("retained_ndcg_oracle_ratio@5") == (0.0, math.inf)
    assert metric_range("speedup_over_retrain") == (0.0, math.inf)
    # a ratio of two purity excesses over the mean cosine: either may be negative
    assert metric_range("code_purity_ratio") == (-math.inf, math.inf)


def test_unknown_and_missing_metrics(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    d = root / TASK / "ga"

    def old_names(r: dict) -> None:  # protocol 1.x names are gone
        r["metrics"]["fe@10"] = dict(r["metrics"]["ce@10"])
        r["metrics"]["fe_latent@10"] = dict(r["metrics"]["ce@10"])
        r["metrics"]["oracle_match@10"] = dict(r["metrics"]["oracle_match"])  # not per-K
        r["metrics"]["ce"] = dict(r["metrics"]["ce@10"])  # per-K without its K

    edit(d / "seed0.json", old_names)
    edit(d / "seed1.json", lambda r: [r["metrics"].pop(n) for n in ("oracle_match", "ce@5")])
    assert found(root, tiny_results) == {
        ("ga", "seed0.json", "metrics.fe@10"),
        ("ga", "seed0.json", "metrics.fe_latent@10"),
        ("ga", "seed0.json", "metrics.oracle_match@10"),
        ("ga", "seed0.json", "metrics.ce"),
        ("ga", "seed1.json", "metrics.oracle_match"),
        ("ga", "seed1.json", "metrics.ce@5"),
    }


def test_a_new_k_needs_every_metric_at_it(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed0.json"
    edit(f, lambda r: r["metrics"].update({"retained_recall@2": r["metrics"]["retained_recall@1"]}))
    fields = {x[2] for x in found(root, tiny_results)}
    assert "metrics.ce@2" in fields and "metrics.relearn_excess@2" in fields


def test_schema_and_hash_problems(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    d = root / TASK / "ga"

    def bad_method(r: dict) -> None:
        r["method"]["config"]["extra_knob"] = 123.0

    edit(d / "seed0.json", bad_method)
    edit(d / "seed1.json", lambda r: r["oracle"].pop("checkpoint_sha256"))
    edit(root / TASK / "filter" / "seed0.json", lambda r: r.pop("seed"))
    edit(root / TASK / "filter" / "seed1.json", lambda r: r.update(schema_version=7))
    edit(root / TASK / "tracer" / "seed0.json", lambda r: r["environment"].update(threads="2"))
    (root / TASK / "tracer" / "seed1.json").write_text("{not json")
    assert found(root, tiny_results) == {
        ("ga", "seed0.json", "method.config_hash"),
        ("ga", "seed1.json", "oracle.checkpoint_sha256"),
        ("filter", "seed0.json", "seed"),
        ("filter", "seed1.json", "schema_version"),
        ("tracer", "seed0.json", "environment.threads"),
        ("tracer", "seed1.json", ""),
    }


def test_schema_1_file_is_refused(tiny_results, tmp_path, capsys):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed0.json"
    edit(f, lambda r: r.update(schema_version=1))
    problems = validate(f, task_files(tiny_results))
    assert [(p.file, p.field) for p in problems] == [(str(f), "schema_version")]
    assert "protocol 1.x" in problems[0].message
    assert cli(["validate", str(f), "--task-file", str(task_files(tiny_results)[0])]) == 1
    assert "protocol 1.x" in capsys.readouterr().out


def test_reference_flag(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    edit(root / TASK / "ga" / "seed0.json", lambda r: r.update(reference=True))
    # and a reference row is scored against itself: its own columns must be the oracle's
    assert found(root, tiny_results) == {
        ("ga", "seed0.json", f)
        for f in ("reference", "evidence.rank", "evidence.forget_bits", "evidence.latent_rank",
                  "evidence.relearn_rank")
    }  # fmt: skip
    ga = ResultRecord.read(tiny_results / TASK / "ga" / "seed0.json")
    assert reference_problems(ga) == []
    retrain = dataclasses.replace(ga, method=dataclasses.replace(ga.method, name="retrain"))
    [(field, message)] = reference_problems(retrain)
    assert field == "reference" and "must be true" in message
    assert reference_problems(dataclasses.replace(retrain, reference=True)) == []


# --- the evidence --------------------------------------------------------------------------------


def test_missing_evidence_file(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed0.json"
    evidence_path(f).unlink()
    problems = validate(root, task_files(tiny_results))
    assert [(p.file, p.field) for p in problems] == [(str(f), "evidence.file")]
    assert "missing" in problems[0].message


def test_evidence_named_elsewhere(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    edit(root / TASK / "ga" / "seed0.json", lambda r: r["evidence"].update(file="../x.parquet"))
    edit(root / TASK / "ga" / "seed1.json", lambda r: r["evidence"].update(rows=3))
    assert found(root, tiny_results) == {
        ("ga", "seed0.json", "evidence.file"),
        ("ga", "seed1.json", "evidence.rows"),
    }


def test_edited_evidence_is_caught_by_hash_and_recomputation(tiny_results, tmp_path):
    """Forget-set latent ranks pushed down in the parquet, the JSON untouched: the sha256 differs
    and the latent metrics recomputed from the edited evidence disagree with the JSON."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed0.json"
    before = pd.read_parquet(evidence_path(f))
    after = edit_evidence(f, push_latent_ranks_down)
    assert not before["latent_rank"].equals(after["latent_rank"]), "the edit must change ranks"
    fields = {x[2] for x in found(root, tiny_results) if x[:2] == ("tracer", "seed0.json")}
    assert "evidence.sha256" in fields
    assert "metrics.latent_forget_mean_rank.value" in fields
    assert "metrics.latent_ks.value" in fields or "metrics.oracle_match.value" in fields
    assert {x for x in found(root, tiny_results) if x[:2] != ("tracer", "seed0.json")} == set()


def test_edited_evidence_with_its_hash_updated_is_caught_by_recomputation(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed0.json"
    edit_evidence(f, push_latent_ranks_down)
    digest = hashlib.sha256(evidence_path(f).read_bytes()).hexdigest()
    edit(f, lambda r: r["evidence"].update(sha256=digest))
    fields = {x[2] for x in found(root, tiny_results)}
    assert "evidence.sha256" not in fields
    assert "metrics.latent_forget_mean_rank.value" in fields


def forge(f: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Rewrite a cell's evidence and make its JSON agree: metrics recomputed, sha256 and row count
    updated: what a dishonest submitter would do."""
    path = evidence_path(f)
    df = change(pd.read_parquet(path)).reset_index(drop=True)
    df.to_parquet(path, index=False)
    record = json.loads(f.read_text())
    names = evidence_metric_names([1, 5, 10])
    stats = metric_stats(Evidence.from_frame(df), names, n_boot=20)
    record["metrics"].update({name: dataclasses.asdict(stat) for name, stat in stats.items()})
    record["evidence"].update(sha256=hashlib.sha256(path.read_bytes()).hexdigest(), rows=len(df))
    f.write_text(json.dumps(record, allow_nan=True))


def test_the_issue_forgery_fails_validation(tiny_results, tmp_path):
    """The forgery that passed protocol 1.x's validate: retain rows where the method got worse
    dropped, exposure bits cleared, forget-set latent and relearned ranks pushed to the oracle's,
    and the JSON recomputed. The row set and the exposure bits are checked against the task."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "ga" / "seed1.json"

    def flatter(df: pd.DataFrame) -> pd.DataFrame:
        worse = (df["pool"] == "retain_test") & (df["rank"] > df["original_rank"])
        df = df[~worse].copy()
        df["forget_bits"] = 0
        fs = df["pool"] == "forget_set"
        for own in ("latent_rank", "relearn_rank"):
            df.loc[fs, own] = df.loc[fs, f"oracle_{own}"]
        return df

    forge(f, flatter)
    fields = {x[2] for x in found(root, tiny_results) if x[:2] == ("ga", "seed1.json")}
    assert "evidence.position" in fields  # rows dropped: not the task's examples
    only_bits = copy_results(tiny_results, tmp_path / "bits")
    g = only_bits / TASK / "ga" / "seed1.json"

    def hide_exposure(df: pd.DataFrame) -> pd.DataFrame:
        df["forget_bits"] = 0
        return df

    forge(g, hide_exposure)
    problems = validate(only_bits, task_files(tiny_results))
    assert [(Path(p.file).parent.name, p.field) for p in problems] == [
        ("ga", "evidence.forget_bits")
    ]


def test_forged_pair_passes_these_checks(tiny_results, tmp_path):
    """Evidence edited AND the JSON's metrics recomputed from it AND its sha256 updated: nothing
    here can tell (a method's latent ranks are self-reported). Documents the limit of these checks;
    catching it needs the model itself (artifact verification), not this module."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed0.json"
    df = edit_evidence(f, push_latent_ranks_down)
    record = json.loads(f.read_text())
    names = evidence_metric_names([1, 5, 10])
    stats = metric_stats(Evidence.from_frame(df), names, n_boot=20)
    record["metrics"].update({name: dataclasses.asdict(stat) for name, stat in stats.items()})
    record["evidence"]["sha256"] = hashlib.sha256(evidence_path(f).read_bytes()).hexdigest()
    f.write_text(json.dumps(record, allow_nan=True))
    assert validate(root, task_files(tiny_results)) == []


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda df: df.pop("oracle_latent_rank"), "evidence"),
        (lambda df: df.loc.__setitem__((0, "pool"), "retain_train"), "evidence.pool"),
        (lambda df: df.loc.__setitem__((df.index[df["pool"] == "forget_set"][0], "relearn_rank"),
                                       math.nan), "evidence.relearn_rank"),
        # one row dropped from the method's latent sample: no longer the references' sample
        (lambda df: df.loc.__setitem__((df.index[df["pool"] == "forget_set"][0], "latent_rank"),
                                       math.nan), "evidence.original_latent_rank"),
        (lambda df: df.loc.__setitem__((0, "original_rank"), -1.0), "evidence.original_rank"),
        (lambda df: df.loc.__setitem__((0, "oracle_rank"), 0.5), "evidence.oracle_rank"),
    ],
)  # fmt: skip
def test_malformed_evidence(tiny_results, tmp_path, change, field):
    root = copy_results(tiny_results, tmp_path)
    edit_evidence(root / TASK / "ga" / "seed1.json", change)
    assert ("ga", "seed1.json", field) in found(root, tiny_results)


def test_rank_must_agree_with_topk(tiny_results, tmp_path):
    """A retain-test hit removed from the served list with its rank kept: caught against topk."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed0.json"

    def drop_hit(df: pd.DataFrame) -> None:
        hits = df.index[(df["pool"] == "retain_test") & (df["rank"] == 0)]
        assert len(hits), "the fixture's tracer model should serve some retain-test targets first"
        i = hits[0]
        df.at[i, "topk"] = np.where(df.at[i, "topk"] == df.at[i, "target"], -1, df.at[i, "topk"])

    edit_evidence(f, drop_hit)
    assert ("tracer", "seed0.json", "evidence.rank") in found(root, tiny_results)


def test_one_original_and_one_oracle_per_task_and_seed(tiny_results, tmp_path):
    """The original model's and the oracle's evidence columns are shared by every method of a
    (task, seed): one file's own copy edited consistently (metrics recomputed, rehashed) is still
    caught against the other methods' files."""
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "tracer" / "seed0.json"

    def oracle_forgets_less(df: pd.DataFrame) -> None:
        fs = df["pool"] == "forget_set"
        df.loc[fs, "oracle_latent_rank"] = df.loc[fs, "original_latent_rank"]

    df = edit_evidence(f, oracle_forgets_less)
    record = json.loads(f.read_text())
    names = evidence_metric_names([1, 5, 10])
    stats = metric_stats(Evidence.from_frame(df), names, n_boot=20)
    record["metrics"].update({name: dataclasses.asdict(stat) for name, stat in stats.items()})
    record["evidence"]["sha256"] = hashlib.sha256(evidence_path(f).read_bytes()).hexdigest()
    f.write_text(json.dumps(record, allow_nan=True))
    edit(root / TASK / "ga" / "seed1.json", lambda r: r["oracle"].update(checkpoint_sha256="0"))
    problems = validate(root, task_files(tiny_results))
    assert {(Path(p.file).parent.name, Path(p.file).name, p.field) for p in problems} == {
        ("tracer", "seed0.json", "evidence"),
        ("ga", "seed1.json", "oracle.checkpoint_sha256"),
    }
    assert any("oracle_latent_rank" in p.message for p in problems)


def test_every_cell_of_a_seed_forged_alike_needs_the_models(tiny_results, tmp_path, monkeypatch):
    """The same oracle edit in every file of seed 0 (metrics recomputed, rehashed) agrees across
    cells, so only recomputing the reference with the models catches it; the clean folder agrees
    with the recomputation, and a machine whose models differ says it cannot check."""
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tiny_results.parent / "cache"))  # the run's models
    clean = copy_results(tiny_results, tmp_path / "clean")
    assert validate(clean, task_files(tiny_results), recompute_reference=reference_frame) == []
    root = copy_results(tiny_results, tmp_path / "forged")

    def oracle_forgets_less(df: pd.DataFrame) -> pd.DataFrame:
        fs = df["pool"] == "forget_set"
        assert (df.loc[fs, "oracle_latent_rank"] != df.loc[fs, "original_latent_rank"]).any()
        df.loc[fs, "oracle_latent_rank"] = df.loc[fs, "original_latent_rank"]
        return df

    for method in ("filter", "ga", "tracer"):
        forge(root / TASK / method / "seed0.json", oracle_forgets_less)
    assert validate(root, task_files(tiny_results)) == []
    problems = validate(root, task_files(tiny_results), recompute_reference=reference_frame)
    assert {(Path(p.file).parent.name, Path(p.file).name, p.field) for p in problems} == {
        (m, "seed0.json", "evidence") for m in ("filter", "ga", "tracer")
    }
    assert all("oracle_latent_rank" in p.message and "harness" not in p.message
               for p in problems)  # fmt: skip
    for method in ("filter", "ga", "tracer"):  # an older harness decoded differently: say so
        edit(root / TASK / method / "seed0.json", lambda r: r.update(harness_version="0.0.9"))
    problems = validate(root, task_files(tiny_results), recompute_reference=reference_frame)
    assert {p.field for p in problems} == {"evidence"} and len(problems) == 3
    assert all(p.message.endswith(f"recorded by harness 0.0.9, recomputed by {__version__}")
               for p in problems)  # fmt: skip
    other = copy_results(tiny_results, tmp_path / "other")
    for method in ("filter", "ga", "tracer"):  # records naming a base model this machine lacks
        for seed in (0, 1):
            edit(
                other / TASK / method / f"seed{seed}.json",
                lambda r: r["backbone"].update(checkpoint_sha256="f" * 64),
            )
    problems = validate(other, task_files(tiny_results), recompute_reference=reference_frame)
    fields = {p.field for p in problems}
    assert fields == {"reference"}


def test_a_worse_ban_in_every_cell_needs_the_models(tiny_results, tmp_path, monkeypatch):
    """The banned original is the utility part's reference: a forger who makes it look worse in
    every file of a seed (lifting every method's utility, metrics recomputed, rehashed) agrees
    across cells; recomputing the reference with the models catches it."""
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tiny_results.parent / "cache"))
    root = copy_results(tiny_results, tmp_path)

    def worse_ban(df: pd.DataFrame) -> pd.DataFrame:
        rt = df["pool"] == "retain_test"
        assert np.isfinite(df.loc[rt, "banned_rank"]).any()
        df.loc[rt, "banned_rank"] += 1.0  # each hit one place lower (inf stays inf)
        return df

    for method in ("filter", "ga", "tracer"):
        forge(root / TASK / method / "seed0.json", worse_ban)
    assert validate(root, task_files(tiny_results)) == []
    problems = validate(root, task_files(tiny_results), recompute_reference=reference_frame)
    assert {(Path(p.file).parent.name, p.field) for p in problems} == {
        (m, "evidence") for m in ("filter", "ga", "tracer")
    }
    assert all("banned_rank" in p.message for p in problems)


def test_filter_serves_what_the_reference_ban_serves(tiny_results):
    """filter's lists are the banned original's, decoded alike: its utility part is exactly 1."""
    for seed in (0, 1):
        f = tiny_results / TASK / "filter" / f"seed{seed}.json"
        ev = Evidence.from_frame(pd.read_parquet(evidence_path(f)))
        assert np.array_equal(ev["rank"], ev["banned_rank"])
        assert json.loads(f.read_text())["metrics"]["utility_part"]["value"] == 1.0


# --- the folder ----------------------------------------------------------------------------------


def test_misplaced_file(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    (root / TASK / "ga").rename(root / TASK / "npo")
    problems = validate(root, task_files(tiny_results))
    assert {(Path(p.file).parent.name, p.field) for p in problems} == {("npo", "")}
    assert all("misplaced" in p.message for p in problems) and len(problems) == 2


def test_duplicate_seed(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    d = root / TASK / "ga"
    (d / "other").mkdir()
    shutil.copy(d / "seed0.json", d / "other" / "seed0.json")
    shutil.copy(evidence_path(d / "seed0.json"), evidence_path(d / "other" / "seed0.json"))
    problems = validate(root, task_files(tiny_results))
    assert any(p.field == "seed" and "duplicate" in p.message for p in problems)


def test_missing_seed(tiny_results, tmp_path):
    root = copy_results(tiny_results, tmp_path)
    f = root / TASK / "filter" / "seed1.json"
    f.unlink()
    evidence_path(f).unlink()
    problems = validate(root, task_files(tiny_results))
    assert [(p.file, p.field) for p in problems] == [(str(f.parent), "seed")]
    assert "missing seeds [1]" in problems[0].message


def test_bad_paths(tmp_path):
    with pytest.raises(BenchError, match="no such"):
        validate(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    [problem] = validate(tmp_path / "empty")
    assert "no result files" in problem.message
    argv = ["validate", str(tmp_path / "nowhere")]
    with pytest.raises(BenchError):
        cli(argv)
