"""The leaderboard: loading results, aggregation over seeds, ranks (by mean where there is no
evidence; significance ranks are in test_leaderboard_significance.py), formats, plot, site, CLI.
The result files the tests write (`record`, `write`, ...) are in conftest.py."""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import edit, full_metrics, record, write

from leaderboard.table import (
    FORMATS,
    LEADERBOARD_METRICS,
    ResultsError,
    format_table,
    leaderboard_table,
    load_results,
    section_metrics,
)
from tasks.errors import BenchError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# method a: erasure 0.5 / 0.6 / 0.7 (mean 0.6, std 0.1); b: 0.2 / 0.4 / 0.9 (0.5, sqrt(0.13))
SCORES = {"a": [0.5, 0.6, 0.7], "b": [0.2, 0.4, 0.9]}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    folder = tmp_path / "results"
    for method, scores in SCORES.items():
        for seed, s in enumerate(scores):
            m = full_metrics(s, oracle_match=s, ce_at_10=1 - s, ce_at_5=0.123)
            write(folder, record(method=method, seed=seed, metrics=m))
    return folder


def test_load_results_one_row_per_file(results: Path) -> None:
    df = load_results(results)
    assert len(df) == 6
    assert sorted(df["seed"]) == [0, 0, 1, 1, 2, 2]
    row = df[(df["method"] == "b") & (df["seed"] == 2)].iloc[0]
    assert row["task_identity"] == "toy@1.0"
    assert row["config_hash"] == "b" * 64 and row["backbone_hash"] == "b" * 64
    assert row["erasure_score"] == 0.9 and row["oracle_match"] == 0.9
    assert row["unlearn_seconds"] == 1.0  # a cost metric taken from `cost`
    assert not row["reference"] and row["evidence"] == ""  # no evidence file beside it
    assert row["path"] == str(results / "toy" / "b" / "seed2.json")
    assert df.attrs["failed"] == 0


def test_protocol_2_0_results_are_refused(results: Path) -> None:
    from benchmark.results.record import PROTOCOL_2_0_MESSAGE

    path = results / "toy" / "a" / "seed1.json"
    edit(path, lambda r: r.update(schema_version=2))
    with pytest.raises(ResultsError) as err:
        load_results(results)
    assert str(err.value) == f"{path}: {PROTOCOL_2_0_MESSAGE}"
    assert "\n" not in str(err.value)


def test_protocol_1_results_are_refused(results: Path) -> None:
    from benchmark.results.record import OLD_VERSION_MESSAGE

    path = results / "toy" / "a" / "seed1.json"
    edit(path, lambda r: r.update(schema_version=1))
    with pytest.raises(ResultsError) as err:
        load_results(results)
    message = str(err.value)
    assert message == f"{path}: {OLD_VERSION_MESSAGE.format(v=1)}"
    assert "\n" not in message and "protocol 1.x" in message


def test_reference_row_with_one_seed_is_unranked(results: Path) -> None:
    write(results, record(method="retrain", metrics=full_metrics(1.0)))
    table = leaderboard_table(load_results(results))
    ref = table[table["method"] == "retrain"].iloc[0]
    assert ref["role"] == "reference" and pd.isna(ref["rank"]) and ref["rank_basis"] == ""
    assert list(table["method"]) == ["a", "b", "retrain"]  # listed last, the others unmoved
    assert list(table["rank"][:2]) == [1, 2]
    md = format_table(table, "md")
    [row] = [x for x in md.splitlines() if "| retrain 1.0" in x]
    assert row.split("|")[1].strip() == "ref" and "(reference)" in row
    assert "ref: the retrain oracle itself" in md


def test_mean_std_rank_exact(results: Path) -> None:
    df = load_results(results)
    before = df.copy()
    table = leaderboard_table(df)
    pd.testing.assert_frame_equal(df, before)  # pure: the input is untouched
    assert list(table["method"]) == ["a", "b"]
    assert list(table["rank"]) == [1, 2]
    assert list(table["rank_basis"]) == ["mean", "mean"]  # no evidence: ranked by mean
    assert list(table["role"]) == ["method", "method"]
    assert table["erasure_score_lo"].isna().all()  # no evidence: no (seed, example) interval
    assert list(table["n_seeds"]) == [3, 3]
    a, b = table.iloc[0], table.iloc[1]
    assert a["erasure_score_mean"] == pytest.approx(0.6, abs=1e-12)
    assert a["erasure_score_std"] == pytest.approx(0.1, abs=1e-12)
    assert b["erasure_score_mean"] == pytest.approx(0.5, abs=1e-12)
    assert b["erasure_score_std"] == pytest.approx(math.sqrt(0.13), abs=1e-12)
    assert b["ce@10_mean"] == pytest.approx(0.5, abs=1e-12)
    assert b["forgetting_part_mean"] == pytest.approx(0.25, abs=1e-12)
    # every leaderboard metric has a column; absent ones are NaN
    for name in LEADERBOARD_METRICS:
        assert f"{name}_mean" in table and f"{name}_std" in table
    assert table["retain_geometry_spearman_mean"].isna().all()


def test_ties_share_a_rank_and_nan_sorts_last(results: Path) -> None:
    for seed, s in enumerate([0.7, 0.6, 0.5]):  # same mean as a
        write(results, record(method="c", seed=seed, metrics=full_metrics(s)))
    for seed, s in enumerate([0.9, math.nan]):  # NaN in one seed: undefined mean
        write(results, record(method="d", seed=seed, metrics=full_metrics(s)))
    table = leaderboard_table(load_results(results))
    ranks = dict(zip(table["method"], table["rank"], strict=True))
    assert ranks["a"] == 1 and ranks["c"] == 1 and ranks["b"] == 3
    assert pd.isna(ranks["d"]) and table["method"].iloc[-1] == "d"
    assert list(table["method"][:2]) == ["a", "c"]


def test_one_seed_has_nan_std(tmp_path: Path) -> None:
    write(tmp_path, record(metrics=full_metrics(0.4)))
    table = leaderboard_table(load_results(tmp_path))
    assert table["n_seeds"].iloc[0] == 1
    assert table["erasure_score_mean"].iloc[0] == 0.4
    assert math.isnan(table["erasure_score_std"].iloc[0])
    assert "| 0.400 " in format_table(table, "md")  # the mean alone, no "± nan"
    assert "nan" not in format_table(table, "md").lower()


@pytest.mark.parametrize(
    "other",
    [
        {"task": "toy", "version": "2.0"},  # another task identity
        {"task": "toy", "data_hash": "e" * 64},  # same identity, other data
        {"task": "toy", "backbone": "f" * 64},  # same identity, other backbone
    ],
)
def test_groups_are_never_mixed(tmp_path: Path, other: dict) -> None:
    for seed in range(2):  # two sets under one results folder, in separate trees
        write(tmp_path / "r1", record(method="a", seed=seed, metrics=full_metrics(0.2)))
        write(tmp_path / "r2", record(method="a", seed=seed, metrics=full_metrics(0.8), **other))
    table = leaderboard_table(load_results(tmp_path))
    assert len(table) == 2
    assert sorted(table["erasure_score_mean"]) == pytest.approx([0.2, 0.8])
    assert list(table["erasure_score_std"]) == [0.0, 0.0]  # no row mixes 0.2 with 0.8
    assert list(table["rank"]) == [1, 1]  # each is first in its own group
    assert format_table(table, "md").count("## toy@") == 2


def test_failed_and_other_files_are_skipped(results: Path) -> None:
    failed = results / "toy" / "a" / "seed3.failed.json"
    failed.write_text(json.dumps({"error": "boom"}))
    (results / "toy" / "a" / "seed0.evidence.parquet").write_bytes(b"not parquet")
    (results / "toy" / "a" / ".seed4.json.abc.tmp").write_text("{")
    df = load_results(results)
    assert len(df) == 6
    assert df.attrs["failed"] == 1 and df.attrs["failed_files"] == [str(failed)]


def test_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="does not exist"):
        load_results(tmp_path / "nope")
    with pytest.raises(ResultsError, match=re.escape(str(tmp_path))):
        load_results(tmp_path)
    (tmp_path / "t" / "m").mkdir(parents=True)
    (tmp_path / "t" / "m" / "seed0.failed.json").write_text("{}")
    with pytest.raises(ResultsError, match="1 failed runs only"):
        load_results(tmp_path)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["method"].pop("config_hash"), "method.config_hash"),
        (lambda r: r["task"].pop("identity"), "task.identity"),
        (lambda r: r.__setitem__("seed", "0"), "seed"),
        (lambda r: r.__setitem__("seed", 5), "seed"),  # disagrees with the file name
        (lambda r: r["metrics"].__setitem__("ce@10", {"value": "high"}), "metrics.ce@10.value"),
        (lambda r: r["metrics"].__setitem__("ce@10", 0.5), "metrics.ce@10"),
        (lambda r: r.__setitem__("metrics", []), "metrics"),
        (lambda r: r.pop("oracle"), "oracle"),
        (lambda r: r.__setitem__("reference", "no"), "reference"),
    ],
)
def test_malformed_result_names_file_and_field(tmp_path: Path, mutate, field: str) -> None:
    rec = record(metrics=full_metrics(0.5))
    mutate(rec)
    path = write(tmp_path, rec, name="seed0.json")
    with pytest.raises(ResultsError) as err:
        load_results(tmp_path)
    assert str(path) in str(err.value) and f"'{field}'" in str(err.value)


def test_invalid_json_names_file(tmp_path: Path) -> None:
    path = tmp_path / "t" / "m" / "seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"seed": 0,')
    with pytest.raises(BenchError, match=re.escape(str(path)) + ":1: not valid JSON"):
        load_results(tmp_path)


def test_missing_k10_falls_back_to_largest_k(tmp_path: Path) -> None:
    for seed in range(2):
        m = full_metrics(
            0.5, forget_set_recall_at_2=0.1, forget_set_recall_at_5=0.3 + seed, ce_at_5=0.2,
            ce_at_1=0.9, retained_ndcg_ratio_at_5=0.9,
        )  # fmt: skip
        write(tmp_path, record(seed=seed, metrics=m))
    table = leaderboard_table(load_results(tmp_path))
    shown = section_metrics(table)
    assert "forget_set_recall@5" in shown and "ce@5" in shown and "ce@10" not in shown
    assert "retained_ndcg_oracle_ratio@10" in shown  # absent at every K: the NaN column
    assert table["forget_set_recall@5_mean"].iloc[0] == pytest.approx(0.8)
    assert table["forget_set_recall@10_mean"].isna().all()
    md = format_table(table, "md")
    assert "forget_set_recall@5 ↓" in md and "retained_ndcg_ratio@5 ↑" in md
    assert "ce@5 ↓" in md and "forget_set_recall@10" not in md
    assert "0.800 ± 0.707" in md and "–" in md


def test_every_format_renders(results: Path) -> None:
    table = leaderboard_table(load_results(results))
    md = format_table(table, "md")
    assert "## toy@1.0" in md
    assert "0.600 ± 0.100" in md and "0.500 ± 0.361" in md
    assert "erasure_score ↑" in md and "ce@10 ↓" in md
    lines = [x for x in md.splitlines() if x.startswith("| ")]
    assert lines[1].split("|")[1].strip() == "1" and " a 1.0 " in lines[1]

    back = pd.read_csv(io.StringIO(format_table(table, "csv")))
    assert list(back["method"]) == ["a", "b"]
    assert back["erasure_score_mean"].tolist() == pytest.approx([0.6, 0.5])
    assert back["erasure_score_std"].tolist() == pytest.approx([0.1, math.sqrt(0.13)])

    latex = format_table(table, "latex")
    assert "\\toprule" in latex and "\\begin{tabular}" in latex
    assert "0.600 $\\pm$ 0.100" in latex and "erasure\\_score $\\uparrow$" in latex
    assert "±" not in latex.split("\n", 1)[1]  # only the comment line keeps the raw symbol

    page = format_table(table, "html")
    assert "<h2>toy@1.0" in page and page.count("<table>") == 1 and "0.600 ± 0.100" in page
    assert set(FORMATS) == {"md", "csv", "latex", "html"}
    with pytest.raises(BenchError, match="unknown table format"):
        format_table(table, "xlsx")


def test_tradeoff_plot_is_a_png(results: Path, tmp_path: Path) -> None:
    from PIL import Image

    from leaderboard.plot import tradeoff_plot

    table = leaderboard_table(load_results(results))
    out = tmp_path / "plots" / "toy.png"
    assert tradeoff_plot(table, "toy@1.0", out) == out
    assert out.read_bytes()[:8] == PNG_MAGIC
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 200
    assert [p.name for p in out.parent.iterdir()] == ["toy.png"]  # no temp file left behind
    with pytest.raises(BenchError, match="no leaderboard rows"):
        tradeoff_plot(table, "other@1.0", tmp_path / "x.png")


def test_plot_needs_a_choice_between_groups(tmp_path: Path) -> None:
    from leaderboard.plot import tradeoff_plot

    write(tmp_path / "r1", record(metrics=full_metrics(0.2)))
    write(tmp_path / "r2", record(metrics=full_metrics(0.2), data_hash="e" * 64))
    table = leaderboard_table(load_results(tmp_path))
    with pytest.raises(BenchError, match="data_hash"):
        tradeoff_plot(table, "toy@1.0", tmp_path / "p.png")
    tradeoff_plot(table, "toy@1.0", tmp_path / "p.png", data_hash="e" * 64)
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC


def test_site_is_self_contained(results: Path, tmp_path: Path) -> None:
    from leaderboard.html import write_site

    page_path = write_site(results, tmp_path / "site")
    assert page_path == tmp_path / "site" / "index.html"
    page = page_path.read_text()
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page
    uris = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 1 and base64.b64decode(uris[0])[:8] == PNG_MAGIC
    assert '<section id="task-0" data-task="toy@1.0">' in page
    assert 'data-value="0.6' in page and "0.600 ± 0.100" in page
    assert "harness" in page and "0.1.0" in page and "<script>" in page


def test_cli_subcommand(results: Path, tmp_path: Path, capsys) -> None:
    from benchmark.app.cli import add_parsers

    parser = argparse.ArgumentParser(prog="tracer-bench")
    add_parsers(parser.add_subparsers(dest="command", required=True))

    args = parser.parse_args(["leaderboard", str(results)])
    assert args.func(args) == 0
    assert "0.600 ± 0.100" in capsys.readouterr().out

    out, plots, site = tmp_path / "t.csv", tmp_path / "plots", tmp_path / "site"
    argv = ["leaderboard", str(results), "--format", "csv", "--out", str(out),
            "--plots", str(plots), "--site", str(site)]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert capsys.readouterr().out == ""
    assert pd.read_csv(out)["rank"].tolist() == [1, 2]
    assert [p.name for p in plots.iterdir()] == ["toy-1.0.png"]
    assert (site / "index.html").is_file()

    args = parser.parse_args(["leaderboard", str(tmp_path / "missing")])
    with pytest.raises(BenchError, match=re.escape(str(tmp_path / "missing"))):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["leaderboard", str(results), "--format", "xlsx"])


@pytest.fixture(scope="module")
def with_retrain(tiny_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of tiny_results with the retrain rows (seeds 0 and 1) added by the runner; the
    fixture's cache holds the oracles already, so this takes seconds."""
    import os

    from conftest import SMALL, TINY

    from benchmark.app.runner import run_grid

    out = tmp_path_factory.mktemp("with_retrain") / "results"
    shutil.copytree(tiny_results, out)
    base, old = tiny_results.parent, os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(base / "cache")
    try:
        task = str(base / "toy.toml")
        run_grid([task], ["retrain"], [0, 1], out, progress=False, backbone=TINY, eval_cfg=SMALL)
    finally:
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    return out


def test_real_results(with_retrain: Path, tmp_path: Path) -> None:
    from benchmark.metrics.evidence import Evidence, read_evidence, with_oracle_of
    from benchmark.metrics.registry import compute
    from leaderboard.html import write_site
    from leaderboard.plot import write_plots

    folder = tmp_path / "results"
    shutil.copytree(with_retrain, folder)
    failed = folder / "toy-scary" / "ga" / "seed7.failed.json"
    failed.write_text("{}")
    df = load_results(folder)
    assert len(df) == 8 and df.attrs["failed"] == 1
    assert set(df["method"]) == {"retrain", "filter", "ga", "tracer"}
    assert set(df.loc[df["reference"], "method"]) == {"retrain"}
    assert all(Path(p).is_file() for p in df["evidence"])  # every row carries its evidence
    table = leaderboard_table(df, n_boot=200)
    assert len(table) == 4 and set(table["n_seeds"]) == {2}
    assert table["task_identity"].unique().tolist() == ["toy-scary@1.0"]
    assert set(table["rank_basis"]) == {"paired"} and table["rank"].notna().all()
    ranks = table["rank"].tolist()
    assert ranks == sorted(ranks) and ranks[0] == 1
    methods = table[table["role"] == "method"]
    for _, row in methods.iterrows():  # the means agree with the files
        runs = df[df["method"] == row["method"]]
        assert row["utility_part_mean"] == pytest.approx(runs["utility_part"].mean())
        assert row["erasure_score_mean"] == pytest.approx(runs["erasure_score"].mean())
        assert row["erasure_score_lo"] <= row["erasure_score_hi"]
    # the retrain row: each seed scored against the other seed's oracle, not its own
    [ceiling] = table[table["role"] == "noise ceiling"].to_dict("records")
    assert ceiling["method"] == "retrain"
    evs = [Evidence.from_frame(read_evidence(folder / "toy-scary" / "retrain" / f"seed{s}"
                                             ".evidence.parquet")) for s in (0, 1)]  # fmt: skip
    expected = [compute(with_oracle_of(evs[s], evs[1 - s]), "forgetting_part") for s in (0, 1)]
    assert ceiling["forgetting_part_mean"] == pytest.approx(sum(expected) / 2)
    separated, tested = table.attrs["separated_pairs"][tuple(table.iloc[0][
        ["task_identity", "task_data_hash", "backbone_hash"]])]  # fmt: skip
    # rank = 1 + the methods significantly better: the ranks count every separated pair once
    assert tested == 6 and separated == int((table["rank"] - 1).sum())
    shown = section_metrics(table)
    assert "ce_excess@10" in shown and "oracle_match" in shown
    md = format_table(table, "md")
    assert f"significantly separated pairs: {separated} of 6" in md
    assert "retrain 2.0 (noise ceiling)" in md or "(noise ceiling)" in md
    for fmt in FORMATS:
        assert "toy-scary@1.0" in format_table(table, fmt)
    [plot] = write_plots(table, tmp_path / "plots")
    assert plot.read_bytes()[:8] == PNG_MAGIC
    page = write_site(folder, tmp_path / "site").read_text()
    assert page.count("<tr>") == 5  # header + four rows
    assert "(noise ceiling)" in page and "significantly separated pairs" in page


def test_headline_view_is_the_readme_table(tiny_results: Path, capsys) -> None:
    """`leaderboard --view headline` (the README's tables): rank, method, seeds, the erasure score
    with its interval and its two parts, nothing else, and the notes of the full table."""
    from benchmark.app.cli import add_parsers
    from leaderboard.table import display_frame, format_headline, format_view

    table = leaderboard_table(load_results(tiny_results), n_boot=200)
    md = format_headline(table)
    rows = [[c.strip() for c in x.split("|")[1:-1]] for x in md.splitlines() if x.startswith("| ")]
    header = ["rank", "method", "seeds", "erasure_score ↑", "erasure_score 95% CI"]
    assert rows[0] == [*header, "forgetting_part ↑", "utility_part ↑"]
    assert len(rows) == 1 + len(table)  # a row per method, as in the full table
    [tracer] = table[table["method"] == "tracer"].to_dict("records")
    assert tracer["n_seeds"] == 2 and tracer["erasure_score_lo"] < tracer["erasure_score_hi"]
    expected = [
        str(tracer["rank"]),
        f"tracer {tracer['method_version']}",
        "2",
        f"{tracer['erasure_score_mean']:.3f} ± {tracer['erasure_score_std']:.3f}",
        f"[{tracer['erasure_score_lo']:.3f}, {tracer['erasure_score_hi']:.3f}]",
        f"{tracer['forgetting_part_mean']:.3f} ± {tracer['forgetting_part_std']:.3f}",
        f"{tracer['utility_part_mean']:.3f} ± {tracer['utility_part_std']:.3f}",
    ]
    assert expected in rows[2:]
    assert "\nboard: defaults: every method at its default configuration\n" in md
    assert "significantly separated pairs: " in md and "## toy-scary@1.0 (data " in md
    for fmt in ("md", "html", "latex"):  # the view renders as format_table does
        assert format_view(table, fmt, display_frame) == format_table(table, fmt)
    back = pd.read_csv(io.StringIO(format_headline(table, "csv")))
    assert "config_hash" in back and "erasure_score_lo" in back and "ce@10_mean" not in back
    assert back["erasure_score_mean"].tolist() == pytest.approx(table["erasure_score_mean"])

    parser = argparse.ArgumentParser(prog="tracer-bench")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    argv = ["leaderboard", str(tiny_results), "--view", "headline", "--n-boot", "200"]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    assert capsys.readouterr().out == md
    args = parser.parse_args([*argv, "--compact"])
    with pytest.raises(BenchError, match="two views"):
        args.func(args)
