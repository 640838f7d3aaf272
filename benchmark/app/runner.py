"""Runs a (task x method x seed) grid: one result JSON (and its evidence parquet) per cell, written
atomically; finished cells are skipped on a re-run; a failing cell is recorded and the others go
on. Cells of one (task, seed) share the base model, the retrain oracle and the original model's
reference lists, so a (task, seed) group is the unit of work. An executor
(`benchmark.app.executors`: this process, `jobs` local processes, or Dask workers) runs the
groups; a group hands each finished cell back as bytes and this process writes it, the same way
for every executor. A run killed at any moment and started again finishes the grid: every write
is a rename of a finished temporary file, and leftover temporary files are removed on start."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from benchmark.app.cell import CellContext, run_cell
from benchmark.app.executors import Event, Executor, InProcess, ProcessPool
from benchmark.app.executors import Group as WorkGroup
from benchmark.evaluation.probes import EvalConfig, task_protocol
from benchmark.recommender.backbone import BackboneConfig, build_lock, model_dir, task_backbone
from benchmark.results.checkpoint_source import CheckpointSource
from benchmark.results.record import failure_path, result_path
from benchmark.results.unlearned_model import artifact_files
from benchmark.results.write import CellFiles, CellResult, cell_files, write_json_atomic
from methods.base import Unlearned
from methods.registry import get_method
from tasks import get_task, prepare_task
from tasks.errors import BenchError


def remove_stale_temporaries(out: Path) -> int:
    """Temporary files of writes interrupted by a kill (`.NAME.XXXX.tmp`); returns how many."""
    stale = [p for p in out.rglob(".*.tmp") if p.is_file()] if out.exists() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def part_label(name: str, seed: int, part: int, parts: int) -> str:
    """A group's label in progress lines: "<task> seed <s>", with "(k/n)" for a part of one."""
    return f"{name} seed {seed}" + (f" ({part + 1}/{parts})" * (parts > 1))


def deal_into_parts(groups: list, per_group: int, cells: str) -> list:
    """Each group's `cells` (a tuple field) dealt round-robin into min(per_group, its count)
    parts, each a group of its own with `part` and `parts` set."""
    return [
        dataclasses.replace(g, **{cells: getattr(g, cells)[k::n]}, part=k, parts=n)
        for g in groups
        for n in [min(per_group, len(getattr(g, cells)))]
        for k in range(n)
    ]


@dataclasses.dataclass(frozen=True)
class Group:
    """The cells of one (task, seed) still to run."""

    task: str  # a standard name or a task file path, resolved again in the worker
    name: str
    seed: int
    methods: tuple[str, ...]
    configs: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()  # method -> overrides
    tuning: tuple[tuple[str, str], ...] = ()  # method -> its records' tuning block (JSON)
    part: int = 0  # a (task, seed) whose cells are split over several workers: which part
    parts: int = 1

    @property
    def label(self) -> str:
        return part_label(self.name, self.seed, self.part, self.parts)

    @property
    def n_cells(self) -> int:
        return len(self.methods)

    @property
    def oracle_first(self) -> bool:
        """Odd parts train (or wait for) the oracle before the base model, so two parts of one
        (task, seed) build the two models side by side (the model cache lets one part wait for
        the other's model instead of training it again)."""
        return self.part % 2 == 1


@dataclasses.dataclass(frozen=True)
class CellOutput:
    """A finished cell as the worker hands it to the client: its files, or its failure record."""

    task: str
    method: str
    seed: int
    files: CellFiles | None = None
    failure: dict | None = None
    evaluation_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class GroupWork:
    """What every executor runs for a group, wherever it runs: `work(group, emit)` emits the
    group's progress steps and each finished cell's output (`Event`s); it writes nothing."""

    backbone: BackboneConfig | None  # None: each task's own recipe (task_backbone)
    eval_cfg: EvalConfig | None  # None: each task's own protocol (task_protocol) on `split`
    keep_artifacts: bool = False
    split: str = "test"
    checkpoints: CheckpointSource | None = None  # the board's base models and oracles

    def __call__(self, group: Group, emit: Callable[[Event], None]) -> None:
        ctx = None
        for method in group.methods:
            emit(Event("step", group.label, method))
            try:
                if ctx is None:
                    ctx = self._context(group, emit)
                    emit(Event("step", group.label, method))
                start = time.perf_counter()
                cell, unlearned = run_cell(ctx, method, dict(dict(group.configs).get(method, ())))
                files = self._files(group, method, cell, unlearned, start)
                seconds = cell.cost.evaluation_seconds
                output = CellOutput(group.name, method, group.seed, files, None, seconds)
            except Exception as exc:  # one failing cell must not stop the grid
                output = CellOutput(group.name, method, group.seed, failure={
                    "task": group.name, "method": method, "seed": group.seed,
                    "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
                })  # fmt: skip
            emit(Event("cell", group.label, output))

    def _context(self, group: Group, emit: Callable[[Event], None]) -> CellContext:
        emit(Event("step", group.label, "preparing the task"))
        task = prepare_task(get_task(group.task))
        if self.eval_cfg is None:
            eval_cfg = task_protocol(task.spec, group.seed, self.split)
        else:
            eval_cfg = dataclasses.replace(self.eval_cfg, seed=group.seed)
        doing = {"step": ""}  # a training model's status lines extend the step's name

        def report(line: str) -> None:
            emit(Event("step", group.label, f"{doing['step']}: {line}"))

        ctx = CellContext(
            task, group.seed, self.backbone or task_backbone(task.spec), eval_cfg,
            progress=False, report=report,
            oracle_first=group.oracle_first, checkpoints=self.checkpoints,
        )  # fmt: skip
        cfg, seed = ctx.backbone_cfg, group.seed
        models = [
            ("base model", model_dir("models", task, cfg, seed), ctx.base),
            ("retrain oracle", model_dir("oracles", task, cfg, seed), ctx.oracle),
        ]
        # a model another process is training is built last: a group whose base model another
        # group is training trains its oracle meanwhile
        for step, build in [*build_what_is_free(models[:: -1 if group.oracle_first else 1]),
                            ("original and oracle evidence", ctx.reference)]:  # fmt: skip
            doing["step"] = step
            emit(Event("step", group.label, step))
            build()
        return ctx

    def _files(
        self, group: Group, method: str, cell: CellResult, unl: Unlearned, start: float
    ) -> CellFiles:
        path = result_path(Path("."), group.name, method, group.seed)
        artifacts = None
        if self.keep_artifacts:
            artifacts = artifact_files(unl.model, unl.sids, unl.banned)
        cost = {"cell_seconds": time.perf_counter() - start}
        tuning = dict(group.tuning).get(method)
        return cell_files(path, cell, cost, artifacts, tuning and json.loads(tuning))


def build_what_is_free(builds: list[tuple[str, Path, Callable]]):
    """(name, build) in an order that trains what no other process is training: each time, the
    first model whose build lock is free, built while this process holds that lock; when every
    lock is held elsewhere, the first (waiting for it)."""
    todo = list(builds)
    while todo:
        for b in todo:
            with build_lock(b[1], wait=False) as mine:
                if mine:
                    todo.remove(b)
                    yield b[0], b[2]
                    break
        else:
            first = todo.pop(0)
            yield first[0], first[2]


def plan_groups(
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    out: Path,
    overwrite: bool,
    method_configs: dict[str, dict] | None = None,
    workers: int = 1,
    tuning: dict[str, dict] | None = None,
) -> tuple[list[Group], int]:
    """Groups with cells to run, and the number of finished cells skipped. With more `workers`
    than (task, seed) groups, each group's cells are dealt round-robin into parts, one per
    worker it can use: the parts build the base model and the oracle side by side, then each
    computes the reference and runs its cells."""
    groups, skipped = [], 0
    for t in tasks:
        name = get_task(t).name
        for seed in seeds:
            todo = []
            for m in methods:
                if result_path(out, name, m, seed).exists() and not overwrite:
                    skipped += 1
                else:
                    todo.append(m)
            if todo:
                configs = tuple(
                    (m, tuple(sorted(c.items()))) for m, c in (method_configs or {}).items()
                )
                notes = tuple(
                    (m, json.dumps(block, sort_keys=True)) for m, block in (tuning or {}).items()
                )
                groups.append(Group(t, name, seed, tuple(todo), configs, notes))
    per_group = -(-workers // len(groups)) if groups else 1
    if per_group > 1:
        groups = deal_into_parts(groups, per_group, "methods")
    return groups, skipped


class ResultWriter:
    """The client side of every executor: writes each delivered cell's files (once: a cell
    that a rescheduled group finishes again is skipped), counts, and shows one progress bar for
    the grid with each group's (or each Dask worker's) current step."""

    def __init__(self, out: Path, groups: Sequence[WorkGroup], bar: tqdm, counts: dict) -> None:
        self.out, self.bar, self.counts = out, bar, counts
        self.groups = {g.label: g for g in groups}
        self.written: set[tuple[str, str, int]] = set()
        self.finished: dict[str, int] = dict.fromkeys(self.groups, 0)
        self.steps: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        if event.kind == "step" and event.worker:  # e.g. "127.0.0.1:40321: toy seed 0: ga"
            self.steps[event.worker.split("://")[-1]] = f"{event.label}: {event.payload}"
        elif event.kind == "step":
            self.steps[event.label] = str(event.payload)
        elif event.kind == "cell":
            self._cell(event.label, event.payload)
        elif event.kind == "lost":
            lost = self.groups[event.label].n_cells - self.finished[event.label]
            self._count("failed", lost, f"{event.label}: {event.payload}")
        self.bar.set_postfix_str(" | ".join(f"{k}: {v}" for k, v in self.steps.items()))

    def _cell(self, label: str, cell: CellOutput) -> None:
        if (cell.task, cell.method, cell.seed) in self.written:
            return
        self.written.add((cell.task, cell.method, cell.seed))
        self.finished[label] += 1
        failed = failure_path(self.out, cell.task, cell.method, cell.seed)
        if cell.files is None:
            write_json_atomic(failed, cell.failure)
            self._count("failed", 1, f"{label}: {cell.method}: {cell.failure['error']}")
            return
        cell.files.write(result_path(self.out, cell.task, cell.method, cell.seed))
        failed.unlink(missing_ok=True)
        self.counts["evaluation_seconds"][f"{label} {cell.method}"] = cell.evaluation_seconds
        self._count("done", 1)

    def _count(self, kind: str, n: int, message: str = "") -> None:
        self.counts[kind] += n
        self.bar.update(n)
        if message:
            tqdm.write(f"failed: {message}", file=sys.stderr)


def run_grid(
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    out: Path,
    overwrite: bool = False,
    progress: bool = True,
    backbone: BackboneConfig | None = None,
    eval_cfg: EvalConfig | None = None,
    jobs: int = 1,
    method_configs: dict[str, dict] | None = None,
    save_artifacts: bool = False,
    executor: Executor | None = None,
    tuning: dict[str, dict] | None = None,
    split: str = "test",
    checkpoints: CheckpointSource | None = None,
) -> dict:
    """Run every missing cell with `executor` (default: this process, or `jobs` local
    processes); returns counts {'done', 'skipped', 'failed'}, 'evaluation_seconds'
    ({"<task> seed <s> <method>": seconds after the method returned}) and 'workers'
    ({worker: groups it finished}). `tuning`: method -> the block its records carry
    (`benchmark.app.tune`). Each task is evaluated with its own protocol on `split`;
    `eval_cfg` replaces the protocols (tests: their task must declare the same values, so that
    the results agree with their task), and its split must be `split`. `checkpoints`: the base
    models and oracles come from a board (`benchmark.results.checkpoints`), checked before any
    work, instead of training."""
    for m in methods:
        get_method(m)  # unknown names fail before any work
    out = Path(out)
    remove_stale_temporaries(out)
    if eval_cfg is not None and eval_cfg.split != split:
        raise BenchError(f"eval_cfg.split is {eval_cfg.split!r}, the run's split {split!r}")
    for t in tasks:
        task_protocol(get_task(t), 0, split)  # a bad [evaluation] table fails before any work
    if backbone is None:
        for t in tasks:
            task_backbone(get_task(t))  # a bad [backbone] table fails before any work
    for m, overrides in (method_configs or {}).items():
        get_method(m)(**overrides)  # unknown methods or fields fail before any work
    for t in tasks if checkpoints is not None else ():
        spec = get_task(t)
        for seed in seeds:  # a missing or altered checkpoint fails before any work
            checkpoints.check(spec.identity, seed, backbone or task_backbone(spec))
    parts = jobs if executor is None else 1  # local processes share a group's work
    groups, skipped = plan_groups(
        tasks, methods, seeds, out, overwrite, method_configs, parts, tuning
    )
    counts: dict = {"done": 0, "skipped": skipped, "failed": 0, "evaluation_seconds": {}}
    total = skipped + sum(g.n_cells for g in groups)
    bar = tqdm(total=total, initial=skipped, desc="grid", disable=not progress, unit="cell")
    if executor is None:
        executor = InProcess() if jobs <= 1 or len(groups) <= 1 else ProcessPool(jobs)
    work = GroupWork(backbone, eval_cfg, save_artifacts, split=split, checkpoints=checkpoints)
    counts["workers"] = executor.run(groups, work, ResultWriter(out, groups, bar, counts))
    bar.close()
    return counts
