"""One (task, method, seed) cell: base model -> method -> metrics, with the cost measured."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from benchmark.evaluation.probes import (
    EvalConfig,
    ModelEvidence,
    Reference,
    ServedModel,
    evaluate_unlearning,
    evidence_frame,
    make_reference,
    model_measurements,
)
from benchmark.evaluation.reference import cached_evidence
from benchmark.metrics.bootstrap import metric_stats
from benchmark.metrics.evidence import Evidence
from benchmark.metrics.protocol import is_oracle
from benchmark.metrics.registry import COST_METRICS, evidence_metric_names
from benchmark.metrics.stat import MetricStat
from benchmark.recommender.backbone import BackboneConfig, get_backbone
from benchmark.recommender.features import item_features
from benchmark.recommender.oracle import ORACLE_VERSION, TrainedOracle, train_oracle
from benchmark.results.checkpoint_source import CheckpointSource
from benchmark.results.record import BackboneRef, MethodRef, OracleRef, TaskRef
from benchmark.results.write import CellCost, CellResult
from benchmark.util.memory import PeakRSS
from methods.base import MethodInputs, Unlearned, UnlearningMethod
from methods.registry import get_method
from tasks.errors import BenchError
from tasks.prepare import MethodTaskView, PreparedTask, method_view


@dataclass
class CellContext:
    """What cells of one (task, seed) share: the base model, the oracle and the reference."""

    task: PreparedTask
    seed: int
    backbone_cfg: BackboneConfig
    eval_cfg: EvalConfig
    progress: bool = True
    report: Callable[[str], None] | None = None  # status lines of the base model and oracle
    # read the original's and the oracle's evidence from the cache when there (a run; `validate
    # --recompute-reference` and `verify` recompute it); oracle_first: the odd part of a split
    # group, which built the oracle first, computes the oracle's evidence first
    reuse_reference: bool = True
    oracle_first: bool = False
    # the base model and the oracle from a board instead of training (`--checkpoints`)
    checkpoints: CheckpointSource | None = None
    _cache: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # on validation targets the evaluation sees the task as methods do, without its test
        # targets: choosing hyper-parameters cannot read them (`tracer-bench tune`)
        if self.eval_cfg.split == "valid" and not isinstance(self.task, MethodTaskView):
            self.task = method_view(self.task)

    def inputs(self) -> MethodInputs:
        """A method's inputs: its own copy of the base model (the reference stays intact) and the
        task without its test targets, read-only (`tasks.prepare.method_view`)."""
        bb = self.base()
        return MethodInputs(
            copy.deepcopy(bb.model), bb.sids, self.view(), self.backbone_cfg, self.seed,
            self.progress, self.report,
        )  # fmt: skip

    def base(self):
        if "base" not in self._cache:
            if self.checkpoints is not None:
                self.checkpoints.install("models", self.task, self.backbone_cfg, self.seed)
            self._cache["base"], _ = get_backbone(
                self.task, self.backbone_cfg, self.seed, self.progress, self.report
            )
        return self._cache["base"]

    def oracle(self) -> TrainedOracle:
        """The retrain oracle of this (task, seed): trained once, cached on disk; it does not
        need the base model (parts of a split group build the two side by side)."""
        if "oracle" not in self._cache:
            if self.checkpoints is not None:
                self.checkpoints.install("oracles", self.task, self.backbone_cfg, self.seed)
            self._cache["oracle"] = train_oracle(
                self.view(), self.backbone_cfg, self.seed, self.progress, self.report
            )
        return self._cache["oracle"]

    def oracle_version(self) -> str:
        return ORACLE_VERSION

    def view(self):
        """The task as methods see it (`tasks.prepare.method_view`), built once."""
        if "view" not in self._cache:
            task = self.task
            self._cache["view"] = task if isinstance(task, MethodTaskView) else method_view(task)
        return self._cache["view"]

    def reference(self) -> Reference:
        """The original model's and the oracle's evidence on this seed's pools: computed once, or
        read from the cache (`benchmark.evaluation.reference`) unless `reuse_reference` is off."""
        if "ref" not in self._cache:
            bb, orc = self.base(), self.oracle()
            feats = item_features(self.task, self.backbone_cfg.features)
            work: list[float] = []  # waiting for the other part's entry is not work

            def evidence(*args) -> ModelEvidence:
                out, seconds = cached_evidence(*args, reuse=self.reuse_reference)
                work.append(seconds)
                return out

            self._cache["ref"] = make_reference(
                self.task,
                ServedModel(bb.model, bb.sids),
                ServedModel(orc.model, orc.sids),
                feats,
                self.eval_cfg,
                evidence,
                self.oracle_first,
            )
            self._cache["ref_seconds"] = sum(work)
        return self._cache["ref"]


def check_unlearned(method, unl: Unlearned, task: PreparedTask, base_sids) -> None:
    """What a method returns is checked before it is evaluated: a served SID table with one
    unique, in-range SID per item that the model's codebooks can emit; retain items' SIDs
    unchanged unless the method declares otherwise; a ban that is one bool per item."""
    name = method.name
    codes, sizes = np.asarray(unl.sids.codes), tuple(unl.sids.sizes)

    def bad(why: str) -> BenchError:
        return BenchError(f"method {name!r} returned {why}")

    if codes.ndim != 2 or codes.shape[0] != task.n_items or codes.shape[1] != len(sizes):
        raise bad(f"a SID table of shape {codes.shape}, want ({task.n_items}, {len(sizes)})")
    if (codes < 0).any() or (codes >= np.asarray(sizes)).any():
        raise bad("SID codes outside their codebooks")
    if len(np.unique(codes, axis=0)) != task.n_items:
        raise bad("a SID table in which two items share a SID")
    if tuple(unl.model.cfg.sizes) != sizes:
        raise bad(f"a model whose codebooks {tuple(unl.model.cfg.sizes)} are not the SIDs' {sizes}")
    if not method.changes_retain_sids:
        same_shape = base_sids.codes.shape == codes.shape
        retain = task.retain_mask
        if not same_shape or not np.array_equal(base_sids.codes[retain], codes[retain]):
            raise bad("changed retain items' SIDs (declare changes_retain_sids to allow it)")
    if unl.banned is not None:
        ban = np.asarray(unl.banned)
        if ban.dtype != bool or ban.shape != (task.n_items,):
            raise bad(f"a ban of {ban.dtype} {ban.shape}, want bool ({task.n_items},)")


def cell_metrics(task: PreparedTask, frame: pd.DataFrame, cfg: EvalConfig) -> dict[str, MetricStat]:
    """Every evidence metric of the cell with its paired 95 % bootstrap interval."""
    names = evidence_metric_names(cfg.k_values(task))
    return metric_stats(Evidence.from_frame(frame), names, seed=cfg.seed)


def run_cell(
    ctx: CellContext, method_name: str, config_overrides: dict | None = None,
    inputs: MethodInputs | None = None,
) -> tuple[CellResult, Unlearned]:  # fmt: skip
    """Unlearn with `method_name` and evaluate, or — for the oracle — score its row: the cell's
    result (its cost's evaluation_seconds is everything after the method returned: decode,
    latent scoring, relearning, geometry, bootstrap) and the unlearned model. `inputs`: the
    method's inputs when they are not the base model's (a sequence's later steps)."""
    method = get_method(method_name)(**(config_overrides or {}))
    if is_oracle(method_name):
        return _oracle_cell(ctx, method)
    return _method_cell(ctx, method, inputs)


def _method_cell(
    ctx: CellContext, method: UnlearningMethod, inputs: MethodInputs | None = None
) -> tuple[CellResult, Unlearned]:
    """A method's path: its own copy of the base model in (or `inputs`: a sequence's step gets
    the model, tokenizer and ban the step before returned), its unlearned model evaluated. A
    ban that came in stays served."""
    ctx.oracle()  # the oracle before the reference, as a split group's parts expect
    ref = ctx.reference()
    inputs = inputs or ctx.inputs()
    with PeakRSS() as mem:
        start = time.perf_counter()
        unl = method.unlearn(inputs)
        seconds = time.perf_counter() - start
    check_unlearned(method, unl, inputs.task, inputs.sids)
    if inputs.banned is not None:
        unl.banned = inputs.banned | (False if unl.banned is None else np.asarray(unl.banned))
    eval_start = time.perf_counter()
    served = ServedModel(unl.model, unl.sids, unl.banned)
    frame, measurements, parts = evaluate_unlearning(ctx.task, ref, served, ctx.eval_cfg)
    return _result(ctx, method, frame, measurements, parts, seconds, mem, eval_start), unl


def _oracle_cell(ctx: CellContext, method: UnlearningMethod) -> tuple[CellResult, Unlearned]:
    """The oracle's path: it costs what its training cost, and its evidence is the reference's
    (scored against itself here; the leaderboard scores it against another seed's oracle)."""
    oracle = ctx.oracle()
    ref = ctx.reference()
    unl = Unlearned(oracle.model, oracle.sids, log=oracle.log)
    with PeakRSS() as mem:
        pass  # nothing runs: the oracle was trained (or read) with the reference
    check_unlearned(method, unl, ctx.task, ctx.base().sids)
    eval_start = time.perf_counter()
    served = ServedModel(unl.model, unl.sids, unl.banned)
    frame = evidence_frame(ctx.task, ref, ref.oracle_evidence)
    measurements = model_measurements(ctx.task, ref, served, ctx.eval_cfg)
    parts = {"reused_oracle_evidence": 0.0}
    seconds = oracle.log["total_seconds"]
    return _result(ctx, method, frame, measurements, parts, seconds, mem, eval_start), unl


def _result(
    ctx: CellContext, method: UnlearningMethod, frame: pd.DataFrame,
    measurements: dict[str, MetricStat], parts: dict[str, float], seconds: float, mem: PeakRSS,
    eval_start: float,
) -> CellResult:  # fmt: skip
    """Metrics with their intervals, the measurements and the cost of one cell."""
    retrain_seconds = ctx.oracle().log["total_seconds"]  # tokenizer and training
    t = time.perf_counter()
    metrics = cell_metrics(ctx.task, frame, ctx.eval_cfg)
    parts["bootstrap"] = time.perf_counter() - t
    metrics.update(measurements)
    cost = CellCost(
        unlearn_seconds=seconds,
        peak_memory_mib=mem.peak,
        memory_increase_mib=mem.peak - mem.base,
        speedup_over_retrain=retrain_seconds / seconds if seconds > 0 else float("nan"),
        retrain_seconds=retrain_seconds,
        base_seconds=ctx.base().log["total_seconds"],
        evaluation_seconds=time.perf_counter() - eval_start,
        evaluation_parts={k: round(v, 3) for k, v in parts.items()},
        reference_seconds=ctx._cache.get("ref_seconds", float("nan")),
    )
    for name in COST_METRICS:
        metrics[name] = MetricStat.single(float(getattr(cost, name)))
    task, base = ctx.task, ctx.base()
    return CellResult(
        task=TaskRef(
            name=task.spec.name,
            version=task.spec.version,
            identity=task.spec.identity,
            data_hash=task.content_hash,
            protocol=task.spec.split.protocol,
        ),
        method=MethodRef(method.name, method.version, method.config_dict(), method.config_hash()),
        backbone=BackboneRef(
            ctx.backbone_cfg.to_dict(), ctx.backbone_cfg.config_hash(), base.checkpoint_hash
        ),
        oracle=OracleRef(ctx.oracle_version(), ctx.oracle().log["checkpoint_sha256"]),
        seed=ctx.seed,
        evaluation=dataclasses.asdict(ctx.eval_cfg),
        metrics=metrics,
        cost=cost,
        evidence=frame,
    )
