"""`tracer-bench verify`: re-evaluate a submitted cell from its artifacts with this harness
(DESIGN §6) and, when every evidence metric it recomputes equals the submitted value, write the
verified result. The submitter's code never runs: the artifacts are data
(`benchmark.results.artifacts`). The base model and the oracle are this machine's (trained or
cached); verification needs them to be the checkpoints the submission recorded (CPU runs
reproduce them bit for bit)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from benchmark.results.artifacts import artifacts_dir
from benchmark.results.record import ResultRecord
from benchmark.results.unlearned_model import load_artifacts
from tasks.errors import BenchError

TOLERANCE = 1e-9


def _from_dict(cls, data: dict):
    """A (nested) config dataclass from its asdict() form."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            inner = f.type if isinstance(f.type, type) else None
            if dataclasses.is_dataclass(inner) and isinstance(value, dict):
                value = _from_dict(inner, value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def backbone_config(record: ResultRecord):
    from benchmark.recommender.backbone import ArchConfig, BackboneConfig
    from benchmark.recommender.features import FeatureConfig
    from benchmark.recommender.sid import SIDConfig
    from benchmark.recommender.train import TrainConfig

    d = record.backbone.config
    cfg = BackboneConfig(
        features=FeatureConfig(**d["features"]), sid=SIDConfig(**d["sid"]),
        arch=ArchConfig(**d["arch"]), train=TrainConfig(**d["train"]),
    )  # fmt: skip
    if cfg.config_hash() != record.backbone.config_hash:
        raise BenchError("backbone.config does not reproduce backbone.config_hash")
    return cfg


def _declares_retain_sid_changes(name: str) -> bool:
    """A registered method's declaration (a class attribute: nothing is called); False for a
    method not installed here."""
    from methods.registry import get_method

    try:
        return bool(get_method(name).changes_retain_sids)
    except BenchError:
        return False


def _context(record: ResultRecord, task, where: str):
    """The (task, seed) context of a record, with this machine's base model and oracle; a
    BenchError when either is not the checkpoint the record names."""
    from benchmark.app.cell import CellContext
    from benchmark.evaluation.probes import EvalConfig

    cfg = _from_dict(EvalConfig, record.evaluation or {"seed": record.seed})
    ctx = CellContext(
        task, record.seed, backbone_config(record), cfg, progress=False, reuse_reference=False
    )
    for what, have, want in (
        ("base model", ctx.base().checkpoint_hash, record.backbone.checkpoint_sha256),
        ("retrain oracle", ctx.oracle().log["checkpoint_sha256"], record.oracle.checkpoint_sha256),
    ):
        if have != want:
            raise BenchError(f"{where}: this machine's {what} ({have[:12]}) is not the "
                             f"submission's ({want[:12]}): cannot verify against another "
                             "reference")  # fmt: skip
    return ctx, cfg


def reference_frame(record: ResultRecord, task):
    """The evidence columns of the original model and the oracle for a record's (task, seed),
    recomputed with this machine's models (`validate --recompute-reference`). Any method's frame
    from this reference shares them; the oracle's own evidence stands in for the method."""
    from benchmark.evaluation.probes import evidence_frame

    ctx, _ = _context(record, task, f"{record.task.identity} seed {record.seed}")
    ref = ctx.reference()
    return evidence_frame(task, ref, ref.oracle_evidence)


def verify_result(result_json: Path, out: Path, task_files=()) -> tuple[Path, list[str]]:
    """Re-evaluate one cell. Returns (verified result path, mismatches); the verified result is
    written only when there is no mismatch."""
    from benchmark.app.cell import cell_metrics, check_unlearned
    from benchmark.evaluation.probes import (
        ServedModel,
        evaluate_unlearning,
        evidence_frame,
        run_model,
    )
    from benchmark.results.write import save_verified
    from tasks import get_task, prepare_task

    record = ResultRecord.read(result_json)
    specs = {get_task(str(f)).identity: get_task(str(f)) for f in task_files}
    identity = record.task.identity
    spec = specs.get(identity) or get_task(record.task.name)
    if spec.identity != identity:
        raise BenchError(f"{result_json}: task {identity} is not known here (pass its task file)")
    task = prepare_task(spec)
    if task.content_hash != record.task.data_hash:
        raise BenchError(f"{result_json}: task.data_hash is not this task's ({task.content_hash})")
    folder = artifacts_dir(result_json)
    model, sids, banned = load_artifacts(folder, task.n_items)
    ctx, cfg = _context(record, task, str(result_json))

    class Declared:  # what the checks need to know of the method; none of its code runs
        name = record.method.name
        changes_retain_sids = _declares_retain_sid_changes(name)

    from methods.base import Unlearned

    check_unlearned(Declared, Unlearned(model, sids, banned), task, ctx.base().sids)
    ref = ctx.reference()
    served = ServedModel(model, sids, banned)
    if record.reference:  # the oracle: scored on its own SIDs, as the reference was
        ran = run_model(task, ref.pools, served, cfg, [sids.codes], with_relearn=True)
        frame = evidence_frame(task, ref, ran)
    else:
        frame, _, _ = evaluate_unlearning(task, ref, served, cfg)
    metrics = cell_metrics(task, frame, cfg)
    mismatches = []
    for name, stat in metrics.items():
        have = record.metric(name)
        want = stat["value"]
        same = have is not None and (
            (math.isnan(want) and math.isnan(have)) or math.isclose(have, want, abs_tol=TOLERANCE)
        )
        if not same:
            mismatches.append(f"{name}: submitted {have}, re-evaluated {want}")
    path = record.path_under(out)
    if not mismatches:
        save_verified(out, path, record, frame, folder)
    return path, mismatches
