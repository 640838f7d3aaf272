"""Runs a (task x method x seed) grid: one result JSON per cell, written atomically; finished cells
are skipped on a re-run; a failing cell is recorded and the others go on. Cells of one
(task, seed) share the base model, the retrain oracle and the original model's reference lists."""

from __future__ import annotations

import dataclasses
import sys
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from benchmark.backbone import BackboneConfig
from benchmark.cell import CellContext, run_cell
from benchmark.results import result_record, write_json_atomic
from benchmark.unlearning_metrics import EvalConfig
from methods.registry import get_method
from tasks import get_task, prepare_task


def result_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / task / method / f"seed{seed}.json"


def failure_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / task / method / f"seed{seed}.failed.json"


def run_grid(
    tasks: list[str],
    methods: list[str],
    seeds: list[int],
    out: Path,
    overwrite: bool = False,
    progress: bool = True,
    backbone: BackboneConfig | None = None,
    eval_cfg: EvalConfig | None = None,
) -> dict:
    """Run every missing cell; returns counts {'done', 'skipped', 'failed'}."""
    for m in methods:
        get_method(m)  # unknown names fail before any work
    specs = [get_task(t) for t in tasks]
    cells = [(s, seed, m) for s in specs for seed in seeds for m in methods]
    counts = {"done": 0, "skipped": 0, "failed": 0}
    bar = tqdm(total=len(cells), desc="grid", disable=not progress, position=0)
    for spec in specs:
        task = None
        for seed in seeds:
            ctx = None
            for method in methods:
                path = result_path(out, spec.name, method, seed)
                bar.set_postfix_str(f"{spec.name} {method} seed {seed}")
                if path.exists() and not overwrite:
                    counts["skipped"] += 1
                    bar.update()
                    continue
                try:
                    task = task or prepare_task(spec)
                    ctx = ctx or CellContext(
                        task,
                        seed,
                        backbone or BackboneConfig(),
                        dataclasses.replace(eval_cfg or EvalConfig(), seed=seed),
                        progress=False,
                    )
                    start = time.perf_counter()
                    cell = run_cell(ctx, method)
                    record = result_record(ctx, cell)
                    record["cost"]["cell_seconds"] = time.perf_counter() - start
                    write_json_atomic(path, record)
                    failure_path(out, spec.name, method, seed).unlink(missing_ok=True)
                    counts["done"] += 1
                except Exception as exc:  # one failing cell must not stop the grid
                    counts["failed"] += 1
                    write_json_atomic(
                        failure_path(out, spec.name, method, seed),
                        {
                            "task": spec.identity,
                            "method": method,
                            "seed": seed,
                            "error": f"{type(exc).__name__}: {exc}",
                            "traceback": traceback.format_exc(),
                        },
                    )
                    tqdm.write(f"failed: {spec.name} {method} seed {seed}: {exc}", file=sys.stderr)
                bar.update()
    bar.close()
    return counts
