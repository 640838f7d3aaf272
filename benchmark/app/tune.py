"""`tracer-bench tune` (DESIGN §4): every method searched with the same budget on validation
targets, its configuration chosen by the mean validation erasure score over the selection seeds,
then run at that configuration on test targets: the tuned board.

The folder `out` holds
- `search.json`: the search (budget, search seed, selection seeds, each method's trials);
- `trials/trial<k>/`: a results folder of trial k on validation targets, one cell per (task,
  tunable method, selection seed); the evaluation sees the task without its test targets
  (`CellContext` on split "valid");
- `selection.json`: per task and method, every trial's mean validation scores and the chosen one
  (a later tune of other tasks into the same folder adds its tasks);
- `board/`: the tuned board, each method at its chosen configuration on test targets, its records
  carrying the `tuning` block (search, budget, chosen trial, validation scores).
Every step goes through `run_grid`, so it is cached, resumable and runs on the same executors.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from benchmark.app.runner import run_grid
from benchmark.evaluation.probes import EvalConfig
from benchmark.results.record import ResultRecord, result_path
from benchmark.results.write import json_bytes
from benchmark.util.atomic import write_bytes_atomic
from methods.registry import get_method
from methods.search import trial_overrides
from tasks import get_task
from tasks.errors import BenchError

SELECTED_BY = "erasure_score"
SCORES = (SELECTED_BY, "forgetting_part", "utility_part")


@dataclasses.dataclass(frozen=True)
class Search:
    """What `search.json` records: a resumed tune must be the same search."""

    budget: int
    search_seed: int
    selection_seeds: tuple[int, ...]
    trials: dict[str, list[dict]]  # tunable method -> each trial's Config overrides
    follows: dict[str, str]  # ablation -> the method whose chosen configuration it takes
    fixed: tuple[str, ...]  # methods without hyper-parameters: their defaults

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "search": "random", "selected_by": SELECTED_BY,
                "selection_split": "valid"}  # fmt: skip


def make_search(
    methods: list[str], budget: int, search_seed: int, selection_seeds: list[int]
) -> Search:
    if budget < 1:
        raise BenchError(f"--budget must be at least 1, got {budget}")
    if not selection_seeds:
        raise BenchError("--selection-seeds: give at least one seed")
    trials, follows, fixed = {}, {}, []
    for m in methods:
        cls = get_method(m)
        if cls.tune_as:
            if cls.tune_as not in methods:
                raise BenchError(f"{m} is tuned as {cls.tune_as}'s chosen configuration: add "
                                 f"{cls.tune_as} to --methods")  # fmt: skip
            follows[m] = cls.tune_as
        elif cls.search_space:
            trials[m] = trial_overrides(cls, budget, search_seed)
        else:
            fixed.append(m)
    return Search(budget, search_seed, tuple(selection_seeds), trials, follows, tuple(fixed))


def write_json(path: Path, data: dict) -> None:
    write_bytes_atomic(path, json_bytes(data))


def check_search(out: Path, search: Search) -> None:
    """A resumed tune is the same search; a new one records it."""
    path = out / "search.json"
    mine = json.loads(json_bytes(search.to_dict()))
    if path.exists():
        theirs = json.loads(path.read_text())
        for key in ("budget", "search_seed", "selection_seeds"):
            if theirs.get(key) != mine[key]:
                raise BenchError(f"{path}: a tune with {key} {theirs.get(key)!r} is in this folder "
                                 f"(this one: {mine[key]!r}); use another --out")  # fmt: skip
        for m, trials in mine["trials"].items():
            if m in theirs.get("trials", {}) and theirs["trials"][m] != trials:
                raise BenchError(f"{path}: {m}'s trials differ from this search's (its search "
                                 "space changed?); use another --out")  # fmt: skip
        mine["trials"] = {**theirs.get("trials", {}), **mine["trials"]}
        mine["follows"] = {**theirs.get("follows", {}), **mine["follows"]}
        mine["fixed"] = sorted({*theirs.get("fixed", []), *mine["fixed"]})
    write_json(path, mine)


def trial_folder(out: Path, k: int) -> Path:
    return out / "trials" / f"trial{k}"


def run_trials(
    out: Path, tasks: list[str], search: Search, eval_cfg: EvalConfig | None, **grid
) -> dict:
    """Every trial of every tunable method on the selection seeds' validation targets (with each
    task's protocol, or `eval_cfg`)."""
    valid = None if eval_cfg is None else dataclasses.replace(eval_cfg, split="valid")
    counts = {"done": 0, "skipped": 0, "failed": 0}
    for k in range(search.budget):
        configs = {m: trials[k] for m, trials in search.trials.items()}
        if not configs:
            break
        notes = {m: {"board": "trial", "trial": k, "budget": search.budget,
                     "search_seed": search.search_seed} for m in configs}  # fmt: skip
        print(f"tune: trial {k + 1}/{search.budget} on validation targets", flush=True)
        got = run_grid(
            tasks, sorted(configs), list(search.selection_seeds), trial_folder(out, k),
            eval_cfg=valid, split="valid", method_configs=configs, tuning=notes, **grid,
        )  # fmt: skip
        for key in counts:
            counts[key] += got[key]
    return counts


def trial_scores(out: Path, task: str, method: str, k: int, search: Search) -> dict | None:
    """Mean validation scores of one trial over the selection seeds (None when a cell of it is
    missing, e.g. failed). A record whose config is not the trial's is refused."""
    want = get_method(method)(**search.trials[method][k]).config_dict()
    values: dict[str, list[float]] = {s: [] for s in SCORES}
    for seed in search.selection_seeds:
        path = result_path(trial_folder(out, k), task, method, seed)
        if not path.exists():
            return None
        rec = ResultRecord.read(path)
        if rec.method.config != want or (rec.evaluation or {}).get("split") != "valid":
            raise BenchError(f"{path}: not trial {k} of this search on validation targets")
        for s in SCORES:
            values[s].append(float(rec.metric(s)))
    return {s: sum(v) / len(v) for s, v in values.items()}


def select(out: Path, tasks: list[str], search: Search) -> dict:
    """Per task: each tunable method's trials with their mean validation scores, and the chosen
    trial (the highest mean validation erasure score; the earlier trial on a tie, so the
    defaults win ties). Written to `selection.json`."""
    chosen: dict[str, dict] = {}
    for t in tasks:
        name = get_task(t).name
        per_method = {}
        for m in search.trials:
            rows = [
                {"trial": k, "overrides": search.trials[m][k], "validation": scores}
                for k in range(search.budget)
                if (scores := trial_scores(out, name, m, k, search)) is not None
            ]
            if not rows:
                raise BenchError(f"tune: every trial of {m} on {name} failed (see {out}/trials)")
            best = max(rows, key=lambda r: (r["validation"][SELECTED_BY], -r["trial"]))
            per_method[m] = {"chosen": best["trial"], "trials": rows}
        chosen[name] = per_method
    path = out / "selection.json"  # the tasks of earlier tunes in this folder stay
    earlier = json.loads(path.read_text())["tasks"] if path.exists() else {}
    write_json(path, {**search.to_dict(), "tasks": {**earlier, **chosen}})
    return chosen


def board_configs(search: Search, selection: dict) -> tuple[dict, dict]:
    """(method -> overrides, method -> the tuning block its board records carry) for one task."""
    common = {
        "board": "tuned", "search": "random", "budget": search.budget,
        "search_seed": search.search_seed, "selected_by": SELECTED_BY,
        "selection_split": "valid", "selection_seeds": list(search.selection_seeds),
    }  # fmt: skip
    configs, blocks = {}, {}
    for m, sel in selection.items():
        best = next(r for r in sel["trials"] if r["trial"] == sel["chosen"])
        configs[m] = best["overrides"]
        blocks[m] = {**common, "searched": True, "chosen_trial": sel["chosen"],
                     "overrides": best["overrides"],
                     "validation": best["validation"],
                     "trials": [{"trial": r["trial"], "overrides": r["overrides"],
                                 f"validation_{SELECTED_BY}": r["validation"][SELECTED_BY]}
                                for r in sel["trials"]]}  # fmt: skip
    for m, target in search.follows.items():
        configs[m] = configs[target]
        blocks[m] = {**blocks[target], "tuned_as": target}
    for m in search.fixed:
        configs[m] = {}
        blocks[m] = {**common, "searched": False, "overrides": {}}  # no hyper-parameters
    return configs, blocks


def check_board(board: Path, task: str, configs: dict) -> None:
    """Board cells already written must be at the configurations chosen now."""
    for m, overrides in configs.items():
        want = get_method(m)(**overrides).config_dict()
        for path in sorted((board / task / m).glob("seed*.json")):
            if ResultRecord.read(path).method.config != want:
                raise BenchError(f"{path}: not at the configuration chosen for {m}; use another "
                                 "--out")  # fmt: skip


def tune(
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    out: Path,
    budget: int,
    selection_seeds: list[int],
    search_seed: int = 0,
    eval_cfg: EvalConfig | None = None,
    **grid,
) -> dict:
    """Search, select, and run the tuned board (`grid`: run_grid's backbone, jobs, executor,
    progress), every task with its own protocol unless `eval_cfg` replaces them. Returns
    {"trials": counts, "board": counts, "selection": per task}."""
    out = Path(out)
    if eval_cfg is not None and eval_cfg.split != "test":
        raise BenchError("tune selects on validation targets and reports on test targets")
    search = make_search(methods, budget, search_seed, selection_seeds)
    check_search(out, search)
    trials = run_trials(out, tasks, search, eval_cfg, **grid)
    selection = select(out, tasks, search)
    board = {"done": 0, "skipped": 0, "failed": 0, "workers": {}}
    for t in tasks:
        configs, blocks = board_configs(search, selection[get_task(t).name])
        check_board(out / "board", get_task(t).name, configs)
        print(f"tune: {get_task(t).name} at the chosen configurations on test targets", flush=True)
        got = run_grid([t], methods, seeds, out / "board", eval_cfg=eval_cfg,
                       method_configs=configs, tuning=blocks, **grid)  # fmt: skip
        for key in ("done", "skipped", "failed"):
            board[key] += got[key]
        board["workers"].update(got["workers"])
    return {"trials": trials, "board": board, "selection": selection}
