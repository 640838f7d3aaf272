"""What `validate` checks of a sequential task's step records (DESIGN §5, §6): the `sequence`
block names a known sequence and this step of it, its per-request forgetting is what the evidence
gives (recomputed with the harness's own function over the rows each request forgot), and the
records of one (method, seed) form a chain: step j's input is step j−1's output, step 1's the base
model, and the cumulative costs grow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from benchmark.metrics.evidence import Evidence
from benchmark.metrics.protocol import is_oracle
from benchmark.metrics.sequence import REQUEST_METRICS, request_metrics
from benchmark.metrics.stat import agrees
from benchmark.results.record import ResultRecord
from tasks.errors import BenchError
from tasks.prepare import item_requests
from tasks.sequence import SequenceSpec

BLOCK_FIELDS: dict[str, type | tuple[type, ...]] = {
    "sequence": str, "step": int, "steps": int, "requests": list, "input_sha256": str,
    "output_sha256": str, "cumulative_unlearn_seconds": (int, float),
    "cumulative_retrain_seconds": (int, float), "request_forgetting": dict,
}  # fmt: skip


def block_problems(
    rec: ResultRecord, frame: pd.DataFrame | None, sequences: dict[str, SequenceSpec],
    prepared: Callable[[str], Any],
) -> list[tuple[str, str]]:  # fmt: skip
    """(field, message) for one record's `sequence` block; `prepared(identity)` gives a step's
    prepared task (or a BenchError)."""
    block = rec.sequence
    if block is None:
        return []
    bad = [f for f, kind in BLOCK_FIELDS.items()
           if not isinstance(block.get(f), kind) or isinstance(block.get(f), bool)]  # fmt: skip
    if bad:
        return [(f"sequence.{bad[0]}", "missing or of the wrong kind")]
    seq = sequences.get(block["sequence"])
    if seq is None:
        return [("sequence.sequence", f"unknown sequence {block['sequence']!r}")]
    step = block["step"]
    if block["steps"] != len(seq) or not 1 <= step <= len(seq):
        return [("sequence.step", f"step {step} of {block['steps']}: {seq.identity} has "
                 f"{len(seq)} steps")]  # fmt: skip
    if rec.task.identity != seq.step(step).identity:
        return [("task.identity", f"is not step {step} of {seq.identity} "
                 f"({seq.step(step).identity})")]  # fmt: skip
    if block["requests"] != list(seq.labels[:step]):
        return [("sequence.requests", f"are not {seq.identity}'s first {step} concepts")]
    if frame is None:
        return []
    steps = [prepared(s.identity) for s in seq.steps()[:step]]
    if any(isinstance(t, BenchError) for t in steps):
        return []  # reported as the task's
    if steps[-1].content_hash != rec.task.data_hash:
        return []  # reported as the data hash's
    with np.errstate(all="ignore"):
        want = request_metrics(Evidence.from_frame(frame), item_requests(steps), step, rec.seed)
    have = block["request_forgetting"]
    out = []
    for i, stats in want.items():
        for name in REQUEST_METRICS:
            got = have.get(i, {}).get(name, {}) if isinstance(have.get(i), dict) else {}
            value = got.get("value") if isinstance(got, dict) else None
            if not isinstance(value, int | float) or not agrees(float(value), stats[name].value):
                out.append((f"sequence.request_forgetting.{i}.{name}",
                            f"{value} but the evidence gives {stats[name].value}"))  # fmt: skip
    extra = sorted(set(have) - set(want))
    if extra:
        out.append(("sequence.request_forgetting", f"requests {extra} beyond step {step}"))
    return out


def chain_problems(records: list[tuple[str, ResultRecord]]) -> list[tuple[str, str, str]]:
    """(file, field, message) where the step records of one (sequence, method, seed) do not form a
    chain: step 1 starts from the base model, step j from step j−1's output, and the cumulative
    costs never fall."""
    chains: dict[tuple, dict[int, tuple[str, ResultRecord]]] = {}
    for f, rec in records:
        block = rec.sequence
        if isinstance(block, dict) and isinstance(block.get("step"), int):
            key = (block.get("sequence"), rec.method.name, rec.seed)
            chains.setdefault(key, {})[block["step"]] = (f, rec)
    out = []
    for steps in chains.values():
        for j, (f, rec) in sorted(steps.items()):
            block = rec.sequence or {}
            if is_oracle(rec.method.name):
                continue  # each step's oracle is trained from scratch: no chain
            if j == 1 and block.get("input_sha256") != rec.backbone.checkpoint_sha256:
                out.append((f, "sequence.input_sha256", "step 1 does not start from the base "
                            "model (backbone.checkpoint_sha256)"))  # fmt: skip
            if j - 1 in steps:
                before = steps[j - 1][1].sequence or {}
                if block.get("input_sha256") != before.get("output_sha256"):
                    out.append((f, "sequence.input_sha256", f"is not step {j - 1}'s output "
                                f"({steps[j - 1][0]})"))  # fmt: skip
                for name in ("cumulative_unlearn_seconds", "cumulative_retrain_seconds"):
                    if float(block.get(name, 0)) < float(before.get(name, 0)):
                        out.append((f, f"sequence.{name}", f"falls below step {j - 1}'s"))
    return out
