"""`tracer-bench tune`: the same budget for every method, selection on validation targets only,
the choice recorded in the tuned board's records, and a killed tune resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL, TINY, toy_rows, toy_task_file, write_atomic

from benchmark.app.tune import check_search, make_search, tune
from benchmark.results.record import ResultRecord, result_files, result_path
from leaderboard.table import format_table, leaderboard_table, load_results
from methods.base import UnlearningMethod
from methods.baselines import FinetuneConfig, NoConfig
from methods.registry import available_methods, get_method
from methods.search import IntLogUniform, LogUniform, check_space, trial_overrides
from tasks.errors import BenchError

TESTS = Path(__file__).parent
METHODS = ["filter", "ga", "tracer", "tracer-nocoherence"]
BUDGET, SELECTION, BOARD = 3, [0], [0, 1]


def test_every_method_declares_a_search_space_or_has_nothing_to_tune():
    for name, cls in available_methods().items():
        check_space(cls)  # fields of its Config, low < high
        if cls.tune_as:
            assert cls.tune_as in available_methods(), name
            assert not cls.search_space or cls.search_space == get_method(cls.tune_as).search_space
        elif cls.Config is NoConfig:
            assert cls.search_space == {}, name
        else:
            assert cls.search_space, f"{name} has hyper-parameters but no search space"


def test_trials_start_at_the_defaults_and_are_seeded_draws_inside_the_space():
    npo = get_method("npo")
    trials = trial_overrides(npo, 6, seed=0)
    assert len(trials) == 6 and trials[0] == {}
    for t in trials[1:]:
        assert set(t) == set(npo.search_space)
        for k, v in t.items():
            p = npo.search_space[k]
            assert p.low <= v <= p.high
        assert isinstance(t["steps"], int)
    assert trial_overrides(npo, 6, seed=0) == trials
    assert trial_overrides(npo, 6, seed=1) != trials
    assert trial_overrides(npo, 3, seed=0) == trials[:3]  # a larger budget extends a smaller one


def test_a_search_space_that_names_no_config_field_is_refused():
    class Bad(UnlearningMethod):
        name, version, Config = "bad", "1.0", FinetuneConfig
        search_space = {"step": IntLogUniform(1, 10)}

    with pytest.raises(ValueError, match="'step', not a Config field"):
        check_space(Bad)

    class Empty(Bad):
        search_space = {"lr": LogUniform(1e-3, 1e-3)}

    with pytest.raises(ValueError, match="low must be below high"):
        check_space(Empty)


def test_an_ablation_needs_the_method_it_is_tuned_as(tmp_path):
    with pytest.raises(BenchError, match="add tracer to --methods"):
        make_search(["tracer-nocoherence"], 6, 0, [0])


def test_a_resumed_tune_must_be_the_same_search(tmp_path):
    check_search(tmp_path, make_search(["ga"], 3, 0, [0]))
    check_search(tmp_path, make_search(["ga", "npo"], 3, 0, [0]))  # more methods: the same search
    with pytest.raises(BenchError, match="budget 3 is in this folder"):
        check_search(tmp_path, make_search(["ga"], 4, 0, [0]))
    with pytest.raises(BenchError, match="search_seed 0 is in this folder"):
        check_search(tmp_path, make_search(["ga"], 3, 1, [0]))


def _toy(folder: Path, rotate_test: bool = False) -> Path:
    """The toy task; `rotate_test` changes every user's test targets (the last five
    interactions: their items rotated) and nothing before them."""
    inter, items = toy_rows(n_users=30, n_items=12, per_user=9)
    if rotate_test:
        rows = [r.split("\t") for r in inter]
        for u in range(30):
            user = rows[u * 9 : (u + 1) * 9]
            last = [r[1] for r in user[4:]]
            for r, item in zip(user[4:], last[1:] + last[:1], strict=True):
                r[1] = item
        inter = ["\t".join(r) for r in rows]
    return toy_task_file(folder, write_atomic(folder / "data", inter, items))


def _tune(task_file: Path, out: Path, methods=METHODS, seeds=BOARD) -> dict:
    return tune([str(task_file)], methods, seeds, out, BUDGET, SELECTION, 0, eval_cfg=SMALL,
                backbone=TINY, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_tune(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("tune")
    old = os.environ.get("TRACER_BENCH_CACHE")
    os.environ["TRACER_BENCH_CACHE"] = str(base / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the resumed run in a subprocess has one thread: same bits
    try:
        _tune(_toy(base), base / "out")
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("TRACER_BENCH_CACHE")
        else:
            os.environ["TRACER_BENCH_CACHE"] = old
    return base / "out"


def test_the_budget_is_honoured_for_every_method_with_hyper_parameters(tiny_tune):
    trials = sorted(p.name for p in (tiny_tune / "trials").iterdir())
    assert trials == [f"trial{k}" for k in range(BUDGET)]
    for k in range(BUDGET):
        files = result_files(tiny_tune / "trials" / f"trial{k}")
        recs = [ResultRecord.read(p) for p in files]
        # searched: ga and tracer; filter has nothing to tune, the ablation follows tracer
        assert sorted((r.method.name, r.seed) for r in recs) == [("ga", 0), ("tracer", 0)]
        for r in recs:
            want = trial_overrides(get_method(r.method.name), BUDGET, 0)[k]
            assert r.method.config == get_method(r.method.name)(**want).config_dict()
            assert r.evaluation["split"] == "valid"
            assert r.tuning == {"board": "trial", "trial": k, "budget": BUDGET, "search_seed": 0}
    search = json.loads((tiny_tune / "search.json").read_text())
    assert search["budget"] == BUDGET and search["follows"] == {"tracer-nocoherence": "tracer"}
    assert search["fixed"] == ["filter"]


def test_the_chosen_config_is_the_best_on_validation_and_is_recorded(tiny_tune):
    selection = json.loads((tiny_tune / "selection.json").read_text())["tasks"]["toy-scary"]
    for m in ("ga", "tracer"):
        scores = [
            ResultRecord.read(
                result_path(tiny_tune / "trials" / f"trial{k}", "toy-scary", m, 0)
            ).metric("erasure_score")
            for k in range(BUDGET)
        ]
        best = int(np.argmax(scores))  # the first of equal scores: the defaults win ties
        assert selection[m]["chosen"] == best
        overrides = trial_overrides(get_method(m), BUDGET, 0)[best]
        for seed in BOARD:
            rec = ResultRecord.read(result_path(tiny_tune / "board", "toy-scary", m, seed))
            assert rec.evaluation["split"] == "test"
            assert rec.method.config == get_method(m)(**overrides).config_dict()
            assert rec.tuning["chosen_trial"] == best and rec.tuning["budget"] == BUDGET
            assert rec.tuning["validation"]["erasure_score"] == scores[best]
            assert [t["validation_erasure_score"] for t in rec.tuning["trials"]] == scores
    tracer = trial_overrides(get_method("tracer"), BUDGET, 0)[selection["tracer"]["chosen"]]
    ablation = ResultRecord.read(result_path(tiny_tune / "board", "toy-scary",
                                             "tracer-nocoherence", 0))  # fmt: skip
    assert ablation.method.config == get_method("tracer-nocoherence")(**tracer).config_dict()
    assert ablation.method.config["coherence_weight"] == 0.0
    assert ablation.tuning["tuned_as"] == "tracer"
    text = format_table(leaderboard_table(load_results(tiny_tune / "board")))
    assert f"board: tuned: random search, {BUDGET} configurations per method" in text


def test_selection_reads_validation_targets_only(tiny_tune, tmp_path, monkeypatch):
    """The same tune on a task whose test targets differ: the same validation scores and the
    same choice, while the board (on test targets) does see the difference."""
    monkeypatch.setenv("TRACER_BENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    _tune(_toy(tmp_path, rotate_test=True), out, seeds=[0])
    mine = json.loads((out / "selection.json").read_text())["tasks"]["toy-scary"]
    theirs = json.loads((tiny_tune / "selection.json").read_text())["tasks"]["toy-scary"]
    assert mine == theirs
    for k in range(BUDGET):
        for m in ("ga", "tracer"):
            a = ResultRecord.read(result_path(out / "trials" / f"trial{k}", "toy-scary", m, 0))
            b = ResultRecord.read(result_path(tiny_tune / "trials" / f"trial{k}", "toy-scary",
                                              m, 0))  # fmt: skip
            assert a.task.data_hash != b.task.data_hash
            for name, stat in a.metrics.items():
                if name not in ("unlearn_seconds", "peak_memory_mib", "speedup_over_retrain"):
                    assert stat == b.metrics[name], (k, m, name)
    a = ResultRecord.read(result_path(out / "board", "toy-scary", "filter", 0))
    b = ResultRecord.read(result_path(tiny_tune / "board", "toy-scary", "filter", 0))
    assert a.metric("retained_ndcg@10") != b.metric("retained_ndcg@10")


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import TINY
from conftest import SMALL
from benchmark.app.tune import tune
tune([{task!r}], {methods!r}, {seeds!r}, Path({out!r}), {budget}, {selection!r}, 0,
     eval_cfg=SMALL, backbone=TINY, progress=False)
"""


def test_a_killed_tune_resumes_to_the_same_board(tiny_tune, tmp_path):
    task_file = _toy(tmp_path)
    out = tmp_path / "out"
    code = SCRIPT.format(tests=str(TESTS), task=str(task_file), methods=METHODS, seeds=BOARD,
                         out=str(out), budget=BUDGET, selection=SELECTION)  # fmt: skip
    env = {**os.environ, "TRACER_BENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip

    proc, deadline = start(), time.time() + 300
    while not (out / "trials" / "trial1").exists():  # killed inside the second trial
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "selection.json").exists()
    proc = start()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert json.loads((out / "selection.json").read_text()) == json.loads(
        (tiny_tune / "selection.json").read_text()
    )
    for path in result_files(tiny_tune / "board"):
        mine = ResultRecord.read(out / path.relative_to(tiny_tune))
        theirs = ResultRecord.read(path)
        assert mine.method == theirs.method and mine.tuning == theirs.tuning
        assert mine.metric("erasure_score") == theirs.metric("erasure_score")


def test_selection_takes_the_best_mean_the_earlier_trial_on_a_tie_and_keeps_other_tasks(
    tmp_path, monkeypatch
):
    import benchmark.app.tune as tune_module
    from benchmark.app.tune import select

    scores = {"toy-a": [0.1, 0.5, 0.3], "toy-b": [0.4, 0.2, 0.4]}
    monkeypatch.setattr(tune_module, "trial_scores", lambda out, task, m, k, search: {
        "erasure_score": scores[task][k], "forgetting_part": 0.0, "utility_part": 0.0,
    })  # fmt: skip
    search = make_search(["ga"], 3, 0, [0])
    files = {}
    for name in scores:
        (tmp_path / name).mkdir()
        files[name] = str(toy_task_file(tmp_path / name, tmp_path, name=f'"{name}"'))
    assert select(tmp_path / "out", [files["toy-a"]], search)["toy-a"]["ga"]["chosen"] == 1
    assert select(tmp_path / "out", [files["toy-b"]], search)["toy-b"]["ga"]["chosen"] == 0
    written = json.loads((tmp_path / "out" / "selection.json").read_text())["tasks"]
    assert {t: written[t]["ga"]["chosen"] for t in written} == {"toy-a": 1, "toy-b": 0}
