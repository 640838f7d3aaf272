"""Where a benchmark run's time went (`tracer-bench perf --breakdown RESULTS`): read from the cost
every result records, so the numbers are the run's own measurements, not a re-run.

Per (task, seed) group: base-model training and oracle training (the recorded training time of
each checkpoint, SID fitting included), the reference evidence (the original model's and the
oracle's lists, latent ranks and relearning, computed once), then per cell the method's unlearning
and the evaluation's parts (decode, latent scoring, relearning, geometry, bootstrap)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from benchmark.metrics.protocol import is_oracle
from benchmark.results.record import ResultRecord, result_files
from tasks.errors import BenchError


def _records(root: Path) -> list[ResultRecord]:
    out = [ResultRecord.read(f) for f in (result_files(root) if root.is_dir() else [root])]
    if not out:
        raise BenchError(f"{root}: no result files (<task>/<method>/seed<N>.json)")
    return out


def breakdown(root: str | Path) -> list[tuple[str, float]]:
    """[(step, seconds)] summed over the run's groups and cells, in pipeline order: process
    seconds (work), not wall time — steps of different processes ran side by side. A base model
    that several tasks share (the concepts of one dataset) counts once, as it was trained once."""
    steps: dict[str, float] = defaultdict(float)
    groups: dict[tuple[str, int], dict] = {}
    base: dict[str, float] = {}  # checkpoint sha256 -> its training seconds
    references: dict[tuple[str, int], set[float]] = defaultdict(set)
    for rec in _records(Path(root)):
        cost = rec.cost
        key = (rec.task.identity, rec.seed)
        groups.setdefault(key, cost)
        base.setdefault(rec.backbone.checkpoint_sha256, float(cost.get("base_seconds", math.nan)))
        # each part of a split group records its own reference work (computing one model's
        # evidence, reading the other's from the cache): one timing per part
        references[key].add(float(cost.get("reference_seconds", float("nan"))))
        method = rec.method.name
        if not is_oracle(method):  # the oracle's "unlearning" is its training, counted once below
            steps[f"unlearning: {method}"] += float(cost.get("unlearn_seconds", 0.0))
        for part, secs in (cost.get("evaluation_parts") or {}).items():
            if part != "reused_oracle_evidence":
                steps[f"evaluation: {part}"] += float(secs)
    shared = defaultdict(float)
    shared["base model training"] = sum(base.values())
    for key, cost in groups.items():
        shared["oracle training"] += float(cost.get("retrain_seconds", float("nan")))
        shared["reference evidence"] += sum(references[key])
    ordered = list(shared.items())
    ordered += sorted((k, v) for k, v in steps.items() if k.startswith("unlearning"))
    ordered += sorted((k, v) for k, v in steps.items() if k.startswith("evaluation"))
    return ordered


def format_breakdown(
    rows: list[tuple[str, float]], matmul_gflops: float | None = None, threads: int = 1
) -> str:
    from tabulate import tabulate

    known = [s for _, s in rows if s == s]  # NaN: a result written before the field existed
    total = sum(known)
    table = [
        (name, f"{secs:.1f}" if secs == secs else "n/a",
         f"{secs / total:.1%}" if secs == secs and total else "n/a")
        for name, secs in rows
    ]  # fmt: skip
    table.append(("total", f"{total:.1f}", "100.0%"))
    text = tabulate(table, headers=["step", "seconds", "share"], disable_numparse=True)
    if matmul_gflops is not None:
        text += (f"\nfp32 matmul peak of this machine: {matmul_gflops:.0f} GFLOP/s with "
                 f"{threads} thread{'s' * (threads != 1)}")  # fmt: skip
    return text
