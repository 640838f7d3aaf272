"""Bad input: one line on stderr naming what and where, exit status 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_one_line_error, run_cli, toy_rows, toy_task_file, write_atomic


def test_unknown_task_lists_valid_names(capsys):
    code, _, err = run_cli(capsys, "tasks", "show", "ml100k-horrror")
    assert_one_line_error(code, err, "ml100k-horrror", "ml100k-horror", "ml100k-romance")


def test_unknown_concept_lists_valid_concepts(tmp_path, capsys):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data, label='"Scray"')
    code, _, err = run_cli(capsys, "tasks", "prepare", str(task))
    assert_one_line_error(code, err, "'Scray'", "Scary", "Comedy", "Drama")


@pytest.mark.parametrize(
    "edit, needles",
    [
        (lambda t: t.replace('version = "1.0"\n', ""), ["missing required field 'version'"]),
        (lambda t: t.replace("user_core = 3", 'user_core = "three"'), ["preprocess.user_core"]),
        (lambda t: t.replace("max_history = 4", "max_histroy = 4"), ["preprocess.max_histroy"]),
        (
            lambda t: t.replace('source = "atomic"', 'source = "ml-10m"'),
            ["dataset.source", "ml-100k"],
        ),
        (lambda t: t.replace('label = "Scary"', "label = 3"), ["concept.label"]),
        (lambda t: t + "[[", ["not valid TOML"]),
    ],
)
def test_bad_task_file_names_field_and_file(tmp_path, capsys, edit, needles):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data)
    task.write_text(edit(task.read_text()))
    code, _, err = run_cli(capsys, "tasks", "prepare", str(task))
    assert_one_line_error(code, err, str(task), *needles)


def test_data_file_missing_column(tmp_path, capsys):
    data = write_atomic(tmp_path / "d", *toy_rows())
    inter = data / "toy.inter"
    inter.write_text(inter.read_text().replace("timestamp:float", "time:float"))
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{inter}:1", "timestamp")


def test_data_file_unparsable_row(tmp_path, capsys):
    inter, items = toy_rows()
    inter[6] = "7\t3\t4\tyesterday"
    data = write_atomic(tmp_path / "d", inter, items)
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{data / 'toy.inter'}:8", "timestamp", "yesterday")
    inter[6] = "7\t3"
    write_atomic(tmp_path / "d", inter, items)
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{data / 'toy.inter'}:8", "fields")


@pytest.mark.parametrize("column, value", [(2, "nan"), (2, "inf"), (3, "-inf"), (3, "NaN")])
def test_data_file_non_finite_number_is_refused(tmp_path, capsys, column, value):
    inter, items = toy_rows()
    parts = inter[4].split("\t")
    parts[column] = value
    inter[4] = "\t".join(parts)
    data = write_atomic(tmp_path / "d", inter, items)
    cache = Path(os.environ["TRACER_BENCH_CACHE"]) / "tasks" / "toy-scary@1.0"
    before = set(cache.iterdir()) if cache.exists() else set()
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    name = {2: "rating", 3: "timestamp"}[column]
    assert_one_line_error(code, err, f"{data / 'toy.inter'}:6", f"column '{name}'",
                          "not a finite number", repr(value))  # fmt: skip
    assert (set(cache.iterdir()) if cache.exists() else set()) == before  # nothing cached


def test_data_file_not_utf8_names_line_and_byte_offset(tmp_path, capsys):
    data = write_atomic(tmp_path / "d", *toy_rows())
    item = data / "toy.item"
    raw = item.read_bytes()
    offset = raw.index(b"Movie 3")
    item.write_bytes(raw[:offset] + b"Movi\xe9 3" + raw[offset + len(b"Movie 3") :])  # latin-1 é
    line = raw[:offset].count(b"\n") + 1
    cache = Path(os.environ["TRACER_BENCH_CACHE"]) / "tasks" / "toy-scary@1.0"
    before = set(cache.iterdir()) if cache.exists() else set()
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{item}:{line}", "not UTF-8", f"offset {offset + 4}")
    assert (set(cache.iterdir()) if cache.exists() else set()) == before  # nothing cached


def test_duplicate_item_rows_and_unknown_items_are_errors(tmp_path, capsys):
    inter, items = toy_rows()
    data = write_atomic(tmp_path / "d", inter, items + [items[2]])  # item 3 listed twice
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{data / 'toy.item'}:{len(items) + 2}", "'3' listed twice",
                          "first on line 4")  # fmt: skip
    data = write_atomic(tmp_path / "d", inter + ["1\t99\t4\t5000"], items)  # no item 99
    code, _, err = run_cli(capsys, "tasks", "prepare", str(toy_task_file(tmp_path, data)))
    assert_one_line_error(code, err, f"{data / 'toy.inter'}:{len(inter) + 2}", "'99'",
                          "no metadata row")  # fmt: skip


def test_checksum_mismatch_writes_nothing(tmp_path, capsys):
    data = write_atomic(tmp_path / "d", *toy_rows())
    task = toy_task_file(tmp_path, data)
    bad = '\n[dataset.checksums]\n"toy.inter" = "sha256:' + "ab" * 32 + '"\n'
    task.write_text(task.read_text() + bad)
    cache = Path(os.environ["TRACER_BENCH_CACHE"]) / "tasks" / "toy-scary@1.0"
    before = set(cache.iterdir()) if cache.exists() else set()
    code, _, err = run_cli(capsys, "tasks", "prepare", str(task))
    assert_one_line_error(code, err, "toy.inter", "sha256 checksum mismatch")
    assert (set(cache.iterdir()) if cache.exists() else set()) == before


def test_missing_recbole_gives_install_command(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "recbole" else real(name, *a)
    )
    code, _, err = run_cli(capsys, "tasks", "prepare", "ml100k-horror", "--rebuild")
    assert_one_line_error(code, err, "pip install --no-deps recbole==1.2.1")


def test_console_script_exits_2_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.cli", "tasks", "show", "no-such-task"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown task" in proc.stderr


def test_tasks_list_and_show(capsys, ml100k_horror):
    code, out, _ = run_cli(capsys, "tasks", "list")
    assert code == 0 and "ml100k-horror" in out and "amazon23-grocery-alcohol" in out
    code, out, _ = run_cli(capsys, "tasks", "show", "ml100k-horror", "--json")
    import json

    shown = json.loads(out)
    assert code == 0 and shown["content_hash"] == ml100k_horror.content_hash
    assert shown["forget_test_targets"] + shown["retain_test_targets"] == shown["test_targets"]
    assert shown["test_targets"] == 5 * 943 and "forget_set" in shown


def test_evaluate_without_a_trained_model_says_how_to_train(capsys):
    code, _, err = run_cli(capsys, "evaluate", "--task", "ml100k-horror", "--seed", "12345")
    assert_one_line_error(code, err, "no trained base model", "tracer-bench train --task")


def test_unlearn_with_an_unknown_method_lists_the_methods(capsys):
    code, _, err = run_cli(capsys, "unlearn", "--task", "ml100k-horror", "--method", "tracr")
    assert_one_line_error(code, err, "unknown method 'tracr'", "tracer", "graddiff", "filter")


def test_methods_table_is_generated_from_the_registry(capsys):
    from methods.docs import methods_markdown

    code, out, _ = run_cli(capsys, "methods")
    assert code == 0 and out.strip() == methods_markdown()
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert methods_markdown() in readme, (
        "README's method table is stale: paste `tracer-bench methods`"
    )


def test_run_rejects_bad_jobs_and_unknown_names(tmp_path, capsys):
    out = str(tmp_path / "results")
    code, _, err = run_cli(capsys, "run", "--jobs", "0", "--out", out)
    assert_one_line_error(code, err, "--jobs")
    code, _, err = run_cli(capsys, "run", "--methods", "nope", "--out", out)
    assert_one_line_error(code, err, "unknown method 'nope'")
    code, _, err = run_cli(capsys, "run", "--tasks", "nope", "--methods", "filter", "--out", out)
    assert_one_line_error(code, err, "unknown task 'nope'")
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_run_writes_results_then_prints_the_leaderboard(tmp_path, capsys, monkeypatch):
    """The CLI's grid on a user task with the tiny backbone: results, then the leaderboard."""
    from conftest import SMALL, TINY

    import benchmark.app.runner as runner

    real = runner.run_grid

    def tiny_grid(*args, **kwargs):
        return real(*args, **{**kwargs, "backbone": TINY, "eval_cfg": SMALL})

    monkeypatch.setattr(runner, "run_grid", tiny_grid)
    data = write_atomic(tmp_path / "data", *toy_rows(n_users=30, n_items=12, per_user=9))
    task_file = str(toy_task_file(tmp_path, data))
    out = tmp_path / "results"
    code, stdout, err = run_cli(
        capsys, "run", "--tasks", task_file, "--methods", "filter", "ga", "--out", str(out),
        "--quiet",
    )  # fmt: skip
    assert code == 0, err
    assert "## toy-scary@1.0" in stdout and "| 1 " in stdout and "erasure_score" in stdout
    assert "grid: 2 run, 0 already done, 0 failed" in stdout and "peak RSS" in stdout
    code, stdout, _ = run_cli(
        capsys, "run", "--tasks", task_file, "--methods", "filter", "ga", "--out", str(out),
        "--quiet", "--no-leaderboard",
    )  # fmt: skip
    assert code == 0 and "grid: 0 run, 2 already done" in stdout and "##" not in stdout


@pytest.mark.parametrize(
    "argv, needle",
    [
        (("--scheduler", "tcp://127.0.0.1:8786"), "--scheduler needs --executor dask"),
        (("--cluster", "local:2"), "--cluster needs --executor dask"),
        (("--executor", "dask"), "--executor dask needs --scheduler ADDRESS or --cluster"),
        (("--executor", "dask", "--cluster", "local:0"), "--cluster 'local:0': want local:N"),
        (("--executor", "dask", "--cluster", "pbs"), "--cluster 'pbs': want local:N"),
        (("--executor", "dask", "--cluster", "local:2", "--jobs", "2"), "--jobs is the local"),
        (("--executor", "dask", "--cluster", "local:2", "--resources", "GPU"), "--resources 'GPU'"),
        (("--executor", "dask", "--cluster", "local:2", "--cluster-config", "x.toml"),
         "--cluster-config is the Slurm config"),
        (("--executor", "dask", "--cluster", "local:1", "--resources", "GPU=1"),
         "--resources GPU=1: no worker of the cluster has them"),
    ],
)  # fmt: skip
def test_run_rejects_bad_executor_options(tmp_path, capsys, argv, needle):
    out = tmp_path / "results"
    code, _, err = run_cli(capsys, "run", "--methods", "filter", "--out", str(out), *argv)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_run_names_an_unreachable_scheduler(tmp_path, capsys):
    import socket

    import dask
    import distributed  # noqa: F401  (its config defaults exist before the override below)

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        address = f"tcp://127.0.0.1:{port}"
        code, _, err = run_cli(capsys, "run", "--methods", "filter", "--out", str(tmp_path),
                               "--executor", "dask", "--scheduler", address)  # fmt: skip
    assert_one_line_error(code, err, f"--scheduler {address}: no Dask scheduler answered")


def test_slurm_needs_dask_jobqueue_and_a_valid_config(tmp_path, capsys, monkeypatch):
    config = tmp_path / "slurm.toml"
    run = ("run", "--methods", "filter", "--out", str(tmp_path / "results"), "--executor", "dask",
           "--cluster", "slurm", "--cluster-config", str(config))  # fmt: skip
    for text, needle in (
        ("[slurm]\ncores = 4\nqueues = 'gpu'\n", "unknown key 'queues' in [slurm]"),
        ("[slurm]\ncores = '4'\n", "[slurm] cores must be a int"),
        ("[slurm]\ngpus = 2\n", "gpus must be 0 or 1"),
        ("[slurm\n", "not valid TOML"),
    ):
        config.write_text(text)
        assert_one_line_error(*run_cli(capsys, *run)[::2], needle)
    config.write_text("[slurm]\ncores = 4\nmemory = '8GB'\n")
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # as if not installed
    assert_one_line_error(*run_cli(capsys, *run)[::2], "needs dask-jobqueue: pip install")
