"""Sequential tasks (DESIGN §3, §5) on a tiny sequence written here: the file and its steps, the
request as a method sees it, a method applied to its own previous output, one oracle per prefix
trained once, a kill mid-sequence that loses nothing, and validate's recomputation of the
per-request forgetting and of the chain."""

from __future__ import annotations

import ast
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import MARK, SMALL, TINY, _backbone_tables, _evaluation_table, write_atomic

import benchmark.app.cell as cell_module
import benchmark.recommender.backbone as backbone_module
from benchmark.app.runner import build_what_is_free
from benchmark.app.sequence import run_sequence
from benchmark.metrics.evidence import evidence_path
from benchmark.results.record import result_path
from leaderboard.sequence import format_sequence_tables, sequence_frame, sequence_plot_png
from leaderboard.table import leaderboard_table, load_results
from leaderboard.validate import validate
from tasks import prepare_task
from tasks.errors import BenchError, TaskFileError
from tasks.prepare import item_requests, request_view
from tasks.sequence import load_sequence_file
from tasks.taskfile import load_task_file

TESTS = Path(__file__).parent
KINDS = {0: "Scary", 1: "Comedy", 2: "Drama", 3: "Drama"}  # item i's genre: KINDS[i % 4]
METHODS = ["filter", "tracer", "retrain"]


def toy_data(folder: Path) -> Path:
    inter = [f"{u}\t{(u * 3 + k * 7) % 24 + 1}\t4\t{1000 + 10 * k + u}"
             for u in range(1, 21) for k in range(8)]  # fmt: skip
    items = [f"{i}\tMovie {i}\t{1990 + i}\t{KINDS[i % 4]}" for i in range(1, 25)]
    return write_atomic(folder, inter, items)


def toy_file(path: Path, data: Path, name: str, own_table: str) -> Path:
    """A task or sequence file on the toy data: the shared tables and its own ([concept] or
    [sequence]), with the tiny recipe and evaluation."""
    path.write_text(f"""name = "{name}"
version = "1.0"

[dataset]
source = "atomic"
path = "{data}"

[preprocess]
user_core = 3
item_core = 1
max_history = 4

{own_table}
[evaluation]
{_evaluation_table(SMALL)}""" + _backbone_tables(TINY))  # fmt: skip
    return path


def sequence_file(folder: Path, concepts: str = '[{ label = "Scary" }, { label = "Comedy" }]'
                  ) -> Path:  # fmt: skip
    data = toy_data(folder / "data")
    own = f'[sequence]\nreason = "two genres, the smaller first"\nconcepts = {concepts}\n'
    return toy_file(folder / "toy-seq.toml", data, "toy-seq", own)


def single_task_file(folder: Path, data: Path, label: str = "Scary", union: str = "") -> Path:
    own = f'[concept]\nlabel = "{label}"\n{union}\n'
    return toy_file(folder / f"single-{label}.toml", data, "toy-single", own)


# ---- the file, its steps and the request as a method sees it (no training) ---------------------


def test_steps_forget_the_union_and_a_request_sees_only_its_new_items(tmp_path):
    seq = load_sequence_file(sequence_file(tmp_path))
    assert [s.identity for s in seq.tasks()] == [
        "toy-seq.1@1.0",
        "toy-seq.2@1.0",
        "toy-seq.all@1.0",
    ]
    one, two = (prepare_task(s) for s in seq.steps())
    scary = np.array(["Scary" in one.item_labels(i) for i in range(one.n_items)])
    comedy = np.array(["Comedy" in one.item_labels(i) for i in range(one.n_items)])
    assert np.array_equal(one.forget_mask, scary)
    assert np.array_equal(two.forget_mask, scary | comedy)  # step 2 is evaluated on C1 ∪ C2
    assert np.array_equal(item_requests([one, two]), np.where(scary, 1, np.where(comedy, 2, 0)))
    view = request_view(two, one)
    assert np.array_equal(view.forget_mask, comedy)  # the request: C2's items only
    assert np.array_equal(view.retain_mask, ~(scary | comedy))  # C1's items are in neither
    targets = view.seq_items[view.train_pos]
    assert not scary[targets[view.d_retain]].any() and not scary[targets[view.d_forget]].any()
    assert len(view.d_forget) + len(view.d_retain) < len(view.train_pos)  # C1's examples: neither
    # the same forget items on the same data share one oracle, whatever the task's name
    single = prepare_task(load_task_file(single_task_file(tmp_path, tmp_path / "data")))
    assert single.oracle_hash == one.oracle_hash != two.oracle_hash


def test_a_union_concept_forgets_every_label_and_names_an_unknown_one(tmp_path):
    data = toy_data(tmp_path / "data")
    both = prepare_task(load_task_file(single_task_file(tmp_path, data, "Comedy",
                                                        'union_with = ["Scary"]')))  # fmt: skip
    labels = [both.item_labels(i) for i in range(both.n_items)]
    assert np.array_equal(both.forget_mask, [("Scary" in x) or ("Comedy" in x) for x in labels])
    bad = load_task_file(single_task_file(tmp_path, data, "Comedy", 'union_with = ["Scray"]'))
    with pytest.raises(BenchError, match="unknown concept 'Scray'"):
        prepare_task(bad)


@pytest.mark.parametrize(("concepts", "extra", "message"), [
    ('[{ label = "Scary" }]', "", "must name 2 to 8 concepts"),
    ('[{ label = "Scary" }, { label = "Scary" }]', "", "each once"),
    ('[{ label = "Scary" }, { label = "Comedy" }]', '\n[concept]\nlabel = "Scary"\n',
     "not in a [concept] table"),
])  # fmt: skip
def test_a_bad_sequence_file_is_one_line_naming_the_field(tmp_path, concepts, extra, message):
    path = sequence_file(tmp_path, concepts)
    if extra:
        path.write_text(path.read_text() + extra)
    with pytest.raises(TaskFileError, match=re.escape(message)) as err:
        load_sequence_file(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_a_standard_sequence_step_is_a_task_by_name():
    from tasks import get_task

    step = get_task("ml100k-sequence.2")
    assert step.concept.label == "Children's" and step.concept.union_with == ("Horror",)
    assert get_task("ml100k-sequence.all").concept.labels == ("Horror", "Children's", "Romance")
    with pytest.raises(BenchError, match="unknown task"):
        get_task("ml100k-sequence.4")


def test_a_process_builds_a_free_model_while_another_trains_the_base(tmp_path):
    base, oracle = tmp_path / "models" / "base", tmp_path / "oracles" / "o1"
    for folder in (base, oracle):
        folder.parent.mkdir(parents=True)
    with open(base.parent / f".{base.name}.lock", "a") as held:  # another process training it
        fcntl.flock(held, fcntl.LOCK_EX)
        order = [n for n, _ in build_what_is_free([("base", base, None), ("o1", oracle, None)])]
        assert order == ["o1", "base"]
    order = [n for n, _ in build_what_is_free([("base", base, None), ("o1", oracle, None)])]
    assert order == ["base", "o1"]


# ---- a run: chains, oracles, tables, validate ----------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny sequence run in this process (one thread), recording every method's inputs and
    every model trained."""
    root = tmp_path_factory.mktemp("seq")
    cache = root / "cache"
    os.environ["TRACER_BENCH_CACHE"] = str(cache)
    path, out = sequence_file(root), root / "out"
    seen, trained = [], []
    real_method_cell, real_train = cell_module._method_cell, backbone_module.train_backbone

    def method_cell(ctx, method, inputs=None):
        cell, unl = real_method_cell(ctx, method, inputs)
        seen.append((ctx.task.spec.name, method.name, inputs, unl))
        return cell, unl

    def train(task, cfg, seed, target_ok=None, *args):
        trained.append(("oracle" if target_ok is not None else "base", int(task.forget_mask.sum()),
                        seed))  # fmt: skip
        return real_train(task, cfg, seed, target_ok, *args)

    cell_module._method_cell, backbone_module.train_backbone = method_cell, train
    try:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        counts = run_sequence(str(path), METHODS, [0, 1], out, progress=False, backbone=TINY)
        again = run_sequence(str(path), METHODS, [0, 1], out, progress=False, backbone=TINY)
    finally:
        cell_module._method_cell, backbone_module.train_backbone = real_method_cell, real_train
        torch.set_num_threads(threads)
    return {"path": path, "out": out, "seen": seen, "trained": trained, "counts": counts,
            "again": again, "cache": cache}  # fmt: skip


def test_step_j_starts_from_what_step_j_minus_1_returned(run):
    seen = {(task, method, inputs.seed): (inputs, unl)
            for task, method, inputs, unl in run["seen"]}  # fmt: skip
    for seed in (0, 1):
        for method in ("filter", "tracer"):
            (in1, out1), (in2, _) = (
                seen[("toy-seq.1", method, seed)],
                seen[("toy-seq.2", method, seed)],
            )
            assert in1.banned is None
            for name, weight in out1.model.state_dict().items():
                assert np.array_equal(in2.base.state_dict()[name].numpy(), weight.numpy()), name
            assert np.array_equal(in2.sids.codes, out1.sids.codes)
            assert in2.sids.sizes == out1.sids.sizes
        tracer_in2 = seen[("toy-seq.2", "tracer", seed)][0]
        assert tracer_in2.sids.sizes[0] > TINY.sid.codebook_size  # step 1's fresh codes
        filter_out1 = seen[("toy-seq.1", "filter", seed)][1]
        assert np.array_equal(seen[("toy-seq.2", "filter", seed)][0].banned, filter_out1.banned)
    # the step-2 record says so too: its input is step 1's output, not the base model
    for method in ("filter", "tracer"):
        one = json.loads(result_path(run["out"], "toy-seq.1", method, 0).read_text())["sequence"]
        two = json.loads(result_path(run["out"], "toy-seq.2", method, 0).read_text())["sequence"]
        assert two["input_sha256"] == one["output_sha256"] != one["input_sha256"]


def test_the_bans_accumulate(run):
    rec = json.loads(result_path(run["out"], "toy-seq.2", "filter", 0).read_text())
    assert rec["metrics"]["forget_test_recall@10"]["value"] == 0.0  # both concepts banned
    assert rec["metrics"]["erasure_score"]["value"] == 0.0  # hiding: no oracle match


def test_each_prefix_oracle_is_trained_once_and_reused(run):
    forgets = sorted({n for kind, n, _ in run["trained"] if kind == "oracle"})
    assert len(forgets) == 2  # one oracle per prefix (C1, then C1 ∪ C2)...
    for seed in (0, 1):  # ...per seed, once; and one base model per seed
        mine = [(kind, n) for kind, n, s in run["trained"] if s == seed]
        assert sorted(mine) == sorted([("base", forgets[0]), *(("oracle", n) for n in forgets)])
    assert run["counts"]["done"] == 2 * len(METHODS) * 2 and run["counts"]["failed"] == 0
    assert run["again"]["done"] == 0 and run["again"]["skipped"] == run["counts"]["done"]


def test_the_single_concept_task_reuses_step_1s_oracle(run, tmp_path):
    from benchmark.app.runner import run_grid

    task = single_task_file(tmp_path, Path(run["path"]).parent / "data")
    trained = []
    real = backbone_module.train_backbone

    def train(*args, **kwargs):
        trained.append(args)
        return real(*args, **kwargs)

    os.environ["TRACER_BENCH_CACHE"] = str(run["cache"])
    backbone_module.train_backbone = train
    try:
        counts = run_grid([str(task)], ["filter"], [0], tmp_path / "out", progress=False,
                          backbone=TINY)  # fmt: skip
    finally:
        backbone_module.train_backbone = real
    assert counts["done"] == 1 and trained == []  # base model and oracle both reused


def test_validate_recomputes_the_requests_and_checks_the_chain(run, tmp_path):
    import shutil

    assert validate(run["out"], [run["path"]]) == []
    out = tmp_path / "out"
    shutil.copytree(run["out"], out)
    step2 = result_path(out, "toy-seq.2", "tracer", 1)
    rec = json.loads(step2.read_text())
    rec["sequence"]["request_forgetting"]["1"]["forgetting_part"]["value"] += 0.25
    rec["sequence"]["input_sha256"] = "0" * 64
    step2.write_text(json.dumps(rec))
    fields = {p.field for p in validate(out, [run["path"]])}
    assert "sequence.request_forgetting.1.forgetting_part" in fields
    assert "sequence.input_sha256" in fields


def test_results_carry_the_sequence_and_the_step(run):
    df = load_results(run["out"])  # what publish writes as results.parquet
    steps = df.set_index(["task_name", "method", "seed"])
    assert steps.loc[("toy-seq.2", "tracer", 1), "step"] == 2
    assert set(df["sequence"]) == {"toy-seq@1.0"}


def test_retention_and_drift_come_from_the_records(run):
    seq = sequence_frame(load_results(run["out"]))
    tracer = seq[seq["method"] == "tracer"].set_index(["seed", "step"])
    for seed in (0, 1):
        rec = json.loads(result_path(run["out"], "toy-seq.2", "tracer", seed).read_text())
        ev = pd.read_parquet(evidence_path(result_path(run["out"], "toy-seq.2", "tracer", seed)))
        assert len(ev) == rec["evidence"]["rows"]
        block = rec["sequence"]["request_forgetting"]
        assert tracer.loc[(seed, 2), "request_1"] == block["1"]["forgetting_part"]["value"]
    results = load_results(run["out"])
    board = leaderboard_table(results)
    text = format_sequence_tables(results, board)
    drift = np.mean([tracer.loc[(s, 2), "utility_part"] / tracer.loc[(s, 1), "utility_part"]
                     for s in (0, 1)])  # fmt: skip
    assert f"{drift:.3f}" in text
    for title in ("erasure score per step", "retention", "drift", "cumulative cost"):
        assert f"### {title}" in text
    assert sequence_plot_png(results, board, "toy-seq@1.0").startswith(b"\x89PNG")


# ---- a kill mid-sequence -------------------------------------------------------------------------

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import torch
torch.set_num_threads(1)
from conftest import TINY
from benchmark.app.sequence import run_sequence
print(run_sequence({path!r}, ["tracer"], [0], {out!r}, progress=False, backbone=TINY))
"""


def _start(path: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "TRACER_BENCH_CACHE": str(cache), "OMP_NUM_THREADS": "1",
           MARK: str(out)}  # fmt: skip
    code = SCRIPT.format(tests=str(TESTS), path=str(path), out=str(out))
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def test_a_kill_mid_sequence_resumes_with_nothing_lost(run, tmp_path):
    cache = tmp_path / "cache"
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    proc = _start(run["path"], killed, cache)
    first = result_path(killed, "toy-seq.1", "tracer", 0)
    deadline = time.time() + 300
    while not first.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # inside step 2
    proc.wait()
    assert not result_path(killed, "toy-seq.2", "tracer", 0).exists()
    stamp = first.stat().st_mtime_ns
    counts = {}
    for out in (killed, whole):  # resume; and the same run uninterrupted (same cache)
        done = _start(run["path"], out, cache)
        stdout, stderr = done.communicate(timeout=600)
        assert done.returncode == 0, stderr
        counts[out] = ast.literal_eval(stdout.strip().splitlines()[-1])  # the printed counts dict
    assert (counts[killed]["skipped"], counts[killed]["done"]) == (1, 1)
    assert (counts[whole]["skipped"], counts[whole]["done"]) == (0, 2)
    assert first.stat().st_mtime_ns == stamp  # step 1 was not run again
    a = pd.read_parquet(evidence_path(result_path(killed, "toy-seq.2", "tracer", 0)))
    b = pd.read_parquet(evidence_path(result_path(whole, "toy-seq.2", "tracer", 0)))
    pd.testing.assert_frame_equal(a, b)  # the resumed chain is the uninterrupted one
    ra, rb = (json.loads(result_path(o, "toy-seq.2", "tracer", 0).read_text())["sequence"]
              for o in (killed, whole))  # fmt: skip
    assert ra["input_sha256"] == rb["input_sha256"]
    assert ra["output_sha256"] == rb["output_sha256"]


def test_the_sequence_command_names_a_bad_sequence(capsys, tmp_path):
    from conftest import assert_one_line_error, run_cli

    code, _, err = run_cli(capsys, "sequence", "no-such-sequence", "--out", str(tmp_path))
    assert_one_line_error(code, err, "unknown sequence 'no-such-sequence'")
