"""Runs a (task x method x seed) grid: one result JSON (and its evidence parquet) per cell, written
atomically; finished cells are skipped on a re-run; a failing cell is recorded and the others go
on. Cells of one (task, seed) share the base model, the retrain oracle and the original model's
reference lists, so a (task, seed) group is the unit of work: `jobs` local processes run groups
side by side, each with its share of the cores (two torch processes on the same cores slow each
other down sharply). A run killed at any moment and started again finishes the grid: every write
is a rename of a finished temporary file, and leftover temporary files are removed on start."""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import queue
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from benchmark.artifacts import artifacts_dir, save_artifacts
from benchmark.backbone import BackboneConfig
from benchmark.cell import CellContext, run_cell
from benchmark.device import configure_device
from benchmark.evaluation import EvalConfig
from benchmark.results import save_result, write_json_atomic
from methods.registry import get_method
from tasks import get_task, prepare_task


def result_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / task / method / f"seed{seed}.json"


def failure_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / task / method / f"seed{seed}.failed.json"


def remove_stale_temporaries(out: Path) -> int:
    """Temporary files of writes interrupted by a kill (`.NAME.XXXX.tmp`); returns how many."""
    stale = [p for p in out.rglob(".*.tmp") if p.is_file()] if out.exists() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@dataclasses.dataclass(frozen=True)
class Group:
    """The cells of one (task, seed) still to run."""

    task: str  # a standard name or a task file path, resolved again in the worker
    name: str
    seed: int
    methods: tuple[str, ...]
    configs: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()  # method -> overrides


def _run_group(
    group: Group,
    out: Path,
    backbone: BackboneConfig,
    eval_cfg: EvalConfig,
    report: Callable[[tuple[str, str, str]], None],  # gets (kind, group label, payload)
    keep_artifacts: bool = False,
) -> None:
    label = f"{group.name} seed {group.seed}"

    def emit(kind: str, payload: str = "") -> None:
        report((kind, label, payload))

    ctx, doing = None, {"step": ""}

    def step(what: str) -> None:
        doing["step"] = what
        emit("step", what)

    for method in group.methods:
        step(method)
        try:
            if ctx is None:
                step("preparing the task")
                task = prepare_task(get_task(group.task))
                ctx = CellContext(
                    task,
                    group.seed,
                    backbone,
                    dataclasses.replace(eval_cfg, seed=group.seed),
                    progress=False,
                    report=lambda line: emit("step", f"{doing['step']}: {line}"),
                )
                step("base model")
                ctx.base()
                step("retrain oracle")
                ctx.oracle()
                step("original and oracle evidence")
                ctx.reference()
                step(method)
            start = time.perf_counter()
            cell = run_cell(ctx, method, dict(dict(group.configs).get(method, ())))
            path = result_path(out, group.name, method, group.seed)
            artifacts = None
            if keep_artifacts:  # before the JSON: a JSON on disk has everything beside it
                unl = cell["unlearned"]
                save_artifacts(artifacts_dir(path), unl.model, unl.sids, unl.banned)
                artifacts = artifacts_dir(path)
            save_result(path, ctx, cell, {"cell_seconds": time.perf_counter() - start}, artifacts)
            failure_path(out, group.name, method, group.seed).unlink(missing_ok=True)
            emit("done", f"{method}\t{cell['cost']['evaluation_seconds']:.3f}")
        except Exception as exc:  # one failing cell must not stop the grid
            write_json_atomic(
                failure_path(out, group.name, method, group.seed),
                {
                    "task": group.name,
                    "method": method,
                    "seed": group.seed,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                },
            )
            emit("failed", f"{method}: {type(exc).__name__}: {exc}")


_EVENTS = None  # in a worker process: the queue its groups report through


def _worker_init(threads: int, parent: int, events) -> None:
    import torch

    global _EVENTS
    _EVENTS = events
    torch.set_num_threads(threads)
    configure_device()

    def watch() -> None:  # a worker whose parent was killed stops instead of running on
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def _run_group_in_worker(
    group: Group, out: Path, backbone: BackboneConfig, eval_cfg: EvalConfig, keep: bool
) -> None:
    _run_group(group, out, backbone, eval_cfg, _EVENTS.put, keep)


def plan_groups(
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    out: Path,
    overwrite: bool,
    method_configs: dict[str, dict] | None = None,
) -> tuple[list[Group], int]:
    """Groups with cells to run, and the number of finished cells skipped."""
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
                groups.append(Group(t, name, seed, tuple(todo), configs))
    return groups, skipped


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
) -> dict:
    """Run every missing cell; returns counts {'done', 'skipped', 'failed'} and
    'evaluation_seconds' ({"<task> seed <s> <method>": seconds after the method returned})."""
    for m in methods:
        get_method(m)  # unknown names fail before any work
    out = Path(out)
    remove_stale_temporaries(out)
    backbone, eval_cfg = backbone or BackboneConfig(), eval_cfg or EvalConfig()
    for m, overrides in (method_configs or {}).items():
        get_method(m)(**overrides)  # unknown methods or fields fail before any work
    groups, skipped = plan_groups(tasks, methods, seeds, out, overwrite, method_configs)
    counts: dict = {"done": 0, "skipped": skipped, "failed": 0, "evaluation_seconds": {}}
    total = skipped + sum(len(g.methods) for g in groups)
    bar = tqdm(total=total, initial=skipped, desc="grid", disable=not progress, unit="cell")
    steps: dict[str, str] = {}
    finished: dict[str, int] = {}

    def handle(event) -> None:
        kind, label, payload = event
        if kind == "step":
            steps[label] = payload
        else:
            if kind == "done":
                method, _, secs = payload.partition("\t")
                counts["evaluation_seconds"][f"{label} {method}"] = float(secs)
            finished[label] = finished.get(label, 0) + 1
            bar.update()
            counts[kind] += 1
            if kind == "failed":
                tqdm.write(f"failed: {label}: {payload}", file=sys.stderr)
        bar.set_postfix_str(" | ".join(f"{k}: {v}" for k, v in steps.items()))

    if jobs <= 1 or len(groups) <= 1:
        for g in groups:
            _run_group(g, out, backbone, eval_cfg, handle, save_artifacts)
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        ctx = mp.get_context("spawn")
        # a plain queue handed to the workers at start (no Manager: a manager is a server process
        # of its own, which outlives a SIGKILLed run); the workers watch their parent
        events = ctx.Queue()
        with ProcessPoolExecutor(
            jobs, mp_context=ctx, initializer=_worker_init,
            initargs=(threads, os.getpid(), events),
        ) as pool:  # fmt: skip
            futures = [
                pool.submit(_run_group_in_worker, g, out, backbone, eval_cfg, save_artifacts)
                for g in groups
            ]
            # a worker's last events can still be in its queue's feeder thread when its future
            # completes: read until every finished group has reported each of its cells
            expected, deadline = None, 0.0
            while expected is None or (
                sum(finished.values()) < expected and time.monotonic() < deadline
            ):
                if expected is None and all(f.done() for f in futures):
                    ok = [g for f, g in zip(futures, groups, strict=True) if not f.exception()]
                    expected, deadline = sum(len(g.methods) for g in ok), time.monotonic() + 10
                try:
                    handle(events.get(timeout=0.2))
                except queue.Empty:
                    pass
            for f, g in zip(futures, groups, strict=True):
                if f.exception() is not None:  # a worker died (e.g. out of memory)
                    lost = len(g.methods) - finished.get(f"{g.name} seed {g.seed}", 0)
                    counts["failed"] += lost
                    bar.update(lost)
                    tqdm.write(f"failed: {g.name} seed {g.seed}: {f.exception()}")
    bar.close()
    return counts
