"""Runs a sequential task (DESIGN §3, §5): for each (method, seed), step 1 unlearns C1 from the
base model, step j unlearns Cj from the model, served tokenizer and ban that step j−1 returned,
and each step is evaluated as its own task (`<sequence>.<j>`: F = C1 ∪ … ∪ Cj, against oracle j).
One result per (step, method, seed), written by the runner's `ResultWriter`, with a `sequence`
block: the chain's model hashes, the cumulative costs and each request's forgetting
(`benchmark.metrics.sequence`).

A (sequence, seed) is a group: one base model, k oracles (each cached per prefix and seed; step 1's
is the single-concept task's where the data are the same) and k references, shared by its
methods' chains. Each step's unlearned model is kept in the cache, so a run killed at any step
resumes from the last step written. Parts of a split group (`--jobs`) build the models they need
in rotated orders and skip a model another process is training (`build_what_is_free`), so no
core waits while another trains a base model it could be training an oracle beside."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmark.app.cell import CellContext, run_cell
from benchmark.app.executors import Event, Executor, InProcess, ProcessPool
from benchmark.app.runner import (
    CellOutput,
    ResultWriter,
    build_what_is_free,
    deal_into_parts,
    part_label,
    remove_stale_temporaries,
)
from benchmark.evaluation.probes import task_protocol
from benchmark.metrics.evidence import Evidence
from benchmark.metrics.protocol import is_oracle
from benchmark.metrics.sequence import request_metrics
from benchmark.recommender.backbone import BackboneConfig, model_dir, task_backbone
from benchmark.results.record import ResultRecord, ResultsError, result_path
from benchmark.results.unlearned_model import artifact_files, load_artifacts
from benchmark.results.write import CellResult, cell_files
from benchmark.util.atomic import folder_atomic
from benchmark.util.hashing import bytes_digest
from methods.base import MethodInputs, Unlearned
from methods.registry import get_method
from tasks import prepare_task
from tasks.errors import BenchError
from tasks.prepare import PreparedTask, item_requests, method_view, request_view
from tasks.sequence import SequenceSpec, get_sequence
from tasks.sources.common import cache_path


@dataclasses.dataclass(frozen=True)
class Resume:
    """Where a (method, seed) chain stands: its last step written (0: none), the hash of that
    step's unlearned model, and the unlearning seconds of steps 1..step."""

    method: str
    step: int = 0
    output_sha256: str = ""
    unlearn_seconds: tuple[float, ...] = ()


@dataclasses.dataclass(frozen=True)
class SequenceGroup:
    """The chains of one (sequence, seed) still to run."""

    sequence: str  # a standard name or a sequence file path, resolved again in the worker
    name: str
    seed: int
    steps: int
    chains: tuple[Resume, ...]
    part: int = 0
    parts: int = 1

    @property
    def label(self) -> str:
        return part_label(self.name, self.seed, self.part, self.parts)

    @property
    def n_cells(self) -> int:
        return sum(self.steps - c.step for c in self.chains)


def chain_key(seq: SequenceSpec, method_hash: str, cfg: BackboneConfig, base_sha: str) -> str:
    blob = json.dumps([seq.identity, method_hash, cfg.config_hash(), base_sha], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def state_dir(key: str, seed: int, step: int) -> Path:
    """Where a chain's unlearned model after `step` is kept (the cache, not the results)."""
    return cache_path("sequences", key, f"s{seed}-step{step}")


def save_state(folder: Path, files: dict[str, bytes]) -> None:
    with folder_atomic(folder) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)


def load_state(folder: Path, sha: str, task: PreparedTask, base) -> Unlearned | None:
    """The chain's kept model if it is the one the written step recorded; None otherwise."""
    manifest = folder / "manifest.json"
    if not manifest.is_file() or bytes_digest(manifest.read_bytes()) != sha:
        return None
    try:
        model, sids, banned = load_artifacts(folder, task.n_items, base.model.cfg)
    except BenchError:
        return None
    return Unlearned(model, sids, banned)


@dataclasses.dataclass(frozen=True)
class SequenceWork:
    """What every executor runs for a sequence group (the runner's `GroupWork` for sequences)."""

    backbone: BackboneConfig | None = None
    split: str = "test"

    def __call__(self, group: SequenceGroup, emit: Callable[[Event], None]) -> None:
        try:
            seq, contexts, requests = self._contexts(group, emit)
        except Exception as exc:  # the group's cells cannot run: each is recorded as failed
            for chain in group.chains:
                for j in range(chain.step + 1, group.steps + 1):
                    emit(Event("cell", group.label, _failure(group, seq_step(group, j),
                                                             chain.method, exc)))  # fmt: skip
            return
        for chain in group.chains:
            self._chain(group, seq, contexts, requests, chain, emit)

    def _contexts(self, group: SequenceGroup, emit: Callable[[Event], None]):
        emit(Event("step", group.label, "preparing the steps"))
        seq = get_sequence(group.sequence)
        steps = [prepare_task(s) for s in seq.steps()]
        cfg = self.backbone or task_backbone(seq.template)
        doing = {"step": ""}

        def report(line: str) -> None:
            emit(Event("step", group.label, f"{doing['step']}: {line}"))

        contexts = [
            CellContext(t, group.seed, cfg, task_protocol(t.spec, group.seed, self.split),
                        progress=False, report=report, oracle_first=group.part % 2 == 1)
            for t in steps
        ]  # fmt: skip
        builds = [("base model", model_dir("models", steps[0], cfg, group.seed), contexts[0].base)]
        for j, (t, c) in enumerate(zip(steps, contexts, strict=True), start=1):
            builds.append((f"oracle {j}", model_dir("oracles", t, cfg, group.seed), c.oracle))
        rotate = group.part % len(builds)
        for name, build in build_what_is_free(builds[rotate:] + builds[:rotate]):
            doing["step"] = name
            emit(Event("step", group.label, name))
            build()
        for c in contexts[1:]:
            c._cache["base"] = contexts[0].base()
        order = list(enumerate(contexts, start=1))
        for j, c in order[rotate % len(order) :] + order[: rotate % len(order)]:
            doing["step"] = f"step {j}: original and oracle evidence"
            emit(Event("step", group.label, doing["step"]))
            c.reference()
        return seq, contexts, item_requests(steps)

    def _chain(self, group, seq, contexts, requests, chain: Resume, emit) -> None:
        method = get_method(chain.method)()
        base = contexts[0].base()
        key = chain_key(seq, method.config_hash(), contexts[0].backbone_cfg, base.checkpoint_hash)
        first, seconds = chain.step + 1, list(chain.unlearn_seconds)
        prev = Unlearned(base.model, base.sids, None)
        input_sha = base.checkpoint_hash
        if chain.step and not is_oracle(chain.method):
            kept = load_state(state_dir(key, group.seed, chain.step), chain.output_sha256,
                              contexts[chain.step - 1].task, base)  # fmt: skip
            if kept is None:  # not kept here (another machine, a cleared cache): run it again
                first, seconds = 1, []
            else:
                prev, input_sha = kept, chain.output_sha256
        retrain = [c.oracle().log["total_seconds"] for c in contexts]
        for j in range(first, group.steps + 1):
            step_name = seq_step(group, j)
            emit(Event("step", group.label, f"step {j}: {chain.method}"))
            try:
                ctx, oracle = contexts[j - 1], is_oracle(chain.method)
                inputs = None if oracle else self._inputs(ctx, contexts, j, prev, group, emit)
                start = time.perf_counter()
                cell, unl = run_cell(ctx, chain.method, inputs=inputs)
                seconds = [*seconds[: j - 1], cell.cost.unlearn_seconds]
                output_sha = ""
                if not oracle:  # the oracle of each step is trained from scratch: no chain
                    state = artifact_files(unl.model, unl.sids, unl.banned)
                    output_sha = bytes_digest(state["manifest.json"])
                    save_state(state_dir(key, group.seed, j), state)
                block = sequence_block(seq, j, input_sha, output_sha, seconds, retrain[:j],
                                       cell, requests, group.seed)  # fmt: skip
                path = result_path(Path("."), step_name, chain.method, group.seed)
                cost = {"cell_seconds": time.perf_counter() - start}
                files = cell_files(path, cell, cost, sequence=block)
                output = CellOutput(step_name, chain.method, group.seed, files, None,
                                    cell.cost.evaluation_seconds)  # fmt: skip
                emit(Event("cell", group.label, output))
            except Exception as exc:  # a failed step ends its chain: later steps need its model
                for k in range(j, group.steps + 1):
                    emit(Event("cell", group.label,
                               _failure(group, seq_step(group, k), chain.method, exc)))  # fmt: skip
                return
            prev, input_sha = unl, output_sha

    @staticmethod
    def _inputs(ctx, contexts, j, prev: Unlearned, group: SequenceGroup, emit) -> MethodInputs:
        """Step j's inputs: step j−1's model (its own copy), served tokenizer and ban, and the
        task as request j is made (`tasks.prepare.request_view`), without test targets."""
        earlier = contexts[j - 2].task if j > 1 else None
        view = method_view(request_view(ctx.task, earlier))

        def report(line: str) -> None:
            emit(Event("step", group.label, f"step {j}: {line}"))

        return MethodInputs(copy.deepcopy(prev.model), prev.sids, view, ctx.backbone_cfg,
                            group.seed, False, report, prev.banned)  # fmt: skip


def seq_step(group: SequenceGroup, j: int) -> str:
    return f"{group.name}.{j}"


def _failure(group: SequenceGroup, step: str, method: str, exc: Exception) -> CellOutput:
    return CellOutput(step, method, group.seed, failure={
        "task": step, "method": method, "seed": group.seed,
        "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
    })  # fmt: skip


def sequence_block(
    seq: SequenceSpec, step: int, input_sha: str, output_sha: str, unlearn_seconds: list[float],
    retrain_seconds: list[float], cell: CellResult, requests: np.ndarray, seed: int,
) -> dict:  # fmt: skip
    """The record's `sequence` block of step `step` (`validate` recomputes the per-request
    forgetting from the evidence and checks the chain's hashes)."""
    per_request = request_metrics(Evidence.from_frame(cell.evidence), requests, step, seed)
    return {
        "sequence": seq.identity,
        "step": step,
        "steps": len(seq),
        "requests": list(seq.labels[:step]),
        "input_sha256": input_sha,
        "output_sha256": output_sha,
        "cumulative_unlearn_seconds": float(sum(unlearn_seconds)),
        "cumulative_retrain_seconds": float(sum(retrain_seconds)),
        "request_forgetting": {
            i: {n: dataclasses.asdict(s) for n, s in stats.items()}
            for i, stats in per_request.items()
        },
    }


def plan_sequence(
    seq_ref: str, seq: SequenceSpec, methods: list[str], seeds: list[int], out: Path,
    overwrite: bool, workers: int,
) -> tuple[list[SequenceGroup], int]:  # fmt: skip
    """Groups with chains to run, and the number of finished step cells skipped. A chain
    resumes after its last step written in order (1..j all present). With several `workers`,
    every group is dealt into parts (its chains round-robin), so no worker idles while fewer
    groups than workers are left; the parts of a group build its models side by side."""
    groups, skipped = [], 0
    for seed in seeds:
        chains = []
        for m in methods:
            resume = Resume(m) if overwrite else _resume(out, seq, m, seed)
            skipped += resume.step
            if resume.step < len(seq):
                chains.append(resume)
        if chains:
            groups.append(SequenceGroup(seq_ref, seq.name, seed, len(seq), tuple(chains)))
    if workers > 1:
        groups = deal_into_parts(groups, workers, "chains")
        groups.sort(key=lambda g: g.part)  # first parts first: other seeds' models side by side
    return groups, skipped


def _resume(out: Path, seq: SequenceSpec, method: str, seed: int) -> Resume:
    seconds: list[float] = []
    last = Resume(method)
    for j in range(1, len(seq) + 1):
        path = result_path(out, f"{seq.name}.{j}", method, seed)
        try:
            block = ResultRecord.read(path).sequence if path.is_file() else None
        except ResultsError:
            block = None
        if not isinstance(block, dict) or block.get("step") != j:
            break
        seconds.append(float(block["cumulative_unlearn_seconds"]) - sum(seconds))
        last = Resume(method, j, str(block.get("output_sha256", "")), tuple(seconds))
    return last


def run_sequence(
    sequence: str, methods: list[str], seeds: list[int], out: Path, overwrite: bool = False,
    progress: bool = True, backbone: BackboneConfig | None = None, jobs: int = 1,
    executor: Executor | None = None, split: str = "test",
) -> dict:  # fmt: skip
    """Run every missing step of every (method, seed) chain of `sequence` (a standard name or a
    sequence file); returns counts as `benchmark.app.runner.run_grid` does."""
    for m in methods:
        get_method(m)  # unknown names fail before any work
    seq = get_sequence(sequence)
    for spec in seq.steps():
        task_protocol(spec, 0, split)  # a bad [evaluation] table fails before any work
    if backbone is None:
        task_backbone(seq.template)
    out = Path(out)
    remove_stale_temporaries(out)
    parts = jobs if executor is None else 1
    groups, skipped = plan_sequence(sequence, seq, methods, seeds, out, overwrite, parts)
    counts: dict = {"done": 0, "skipped": skipped, "failed": 0, "evaluation_seconds": {}}
    total = skipped + sum(g.n_cells for g in groups)
    bar = tqdm(total=total, initial=skipped, desc=seq.name, disable=not progress, unit="step")
    if executor is None:
        executor = InProcess() if jobs <= 1 or len(groups) <= 1 else ProcessPool(jobs)
    work = SequenceWork(backbone, split)
    counts["workers"] = executor.run(groups, work, ResultWriter(out, groups, bar, counts))
    bar.close()
    return counts
