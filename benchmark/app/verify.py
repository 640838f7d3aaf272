"""`tracer-bench verify`: re-evaluate a submitted cell from its artifacts with this harness
(DESIGN §6) and, when every evidence metric it recomputes equals the submitted value, write the
verified result. The submitter's code never runs: the artifacts are data
(`benchmark.results.artifacts`). The base model and the oracle are this machine's (trained or
cached); verification needs them to be the checkpoints the submission recorded (CPU runs
reproduce them bit for bit)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmark.results.artifacts import artifacts_dir
from benchmark.results.record import ResultRecord
from benchmark.results.unlearned_model import load_artifacts
from tasks.errors import BenchError

TOLERANCE = 1e-9


def backbone_config(record: ResultRecord):
    """The base recipe a record names, every part typed (`recorded_config`) and reproducing its
    config_hash; a one-line BenchError otherwise."""
    from benchmark.recommender.backbone import ArchConfig, BackboneConfig
    from benchmark.recommender.features import FeatureConfig
    from benchmark.recommender.options import recorded_config
    from benchmark.recommender.sid import SIDConfig
    from benchmark.recommender.train import TrainConfig

    d = record.backbone.config
    parts = {"features": FeatureConfig, "sid": SIDConfig, "arch": ArchConfig, "train": TrainConfig}
    if not isinstance(d, dict) or set(d) != set(parts):
        raise BenchError(f"backbone.config must hold exactly {sorted(parts)}")
    cfg = BackboneConfig(
        **{
            name: recorded_config(cls, d[name], f"backbone.config.{name}")
            for name, cls in parts.items()
        }
    )
    if cfg.config_hash() != record.backbone.config_hash:
        raise BenchError("backbone.config does not reproduce backbone.config_hash")
    return cfg


def task_recipe(record: ResultRecord, task, where: str):
    """The record's base recipe, which must be its task's own (`task_backbone`: the harness
    default with the task file's bounded [backbone] tables): a cell is verified on its task's
    base model, and a recipe a stranger wrote never decides what this machine trains."""
    from benchmark.recommender.backbone import task_backbone

    try:
        recipe = backbone_config(record)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from None
    want = task_backbone(task.spec)
    if recipe.config_hash() != want.config_hash():
        raise BenchError(f"{where}: backbone {recipe.config_hash()[:12]} is not the base recipe "
                         f"of {task.spec.identity} ({want.config_hash()[:12]}): a cell is "
                         "verified on its task's own base model")  # fmt: skip
    return recipe


def base_model_config(recipe, task):
    """The model config of the base recipe on `task`, its last SID level (the collision code)
    at its largest: one code per item."""
    sizes = (recipe.sid.codebook_size,) * recipe.sid.levels + (task.n_items,)
    return recipe.model_config(sizes, task.spec.preprocess.max_history)


def _declares_retain_sid_changes(name: str) -> bool:
    """A registered method's declaration (a class attribute: nothing is called); False for a
    method not installed here."""
    from methods.registry import get_method

    try:
        return bool(get_method(name).changes_retain_sids)
    except BenchError:
        return False


def _context(record: ResultRecord, task, where: str, recipe, checkpoints=None):
    """The (task, seed) context of a record, with this machine's base model and oracle (or the
    `checkpoints` board's) and the task's evaluation protocol; a BenchError when either model is
    not the checkpoint the record names."""
    from benchmark.app.cell import CellContext
    from benchmark.evaluation.probes import task_protocol

    cfg = task_protocol(task.spec, record.seed)
    ctx = CellContext(task, record.seed, recipe, cfg, progress=False, reuse_reference=False,
                      checkpoints=checkpoints)  # fmt: skip
    for what, have, want in (
        ("base model", ctx.base().checkpoint_hash, record.backbone.checkpoint_sha256),
        ("retrain oracle", ctx.oracle().log["checkpoint_sha256"], record.oracle.checkpoint_sha256),
    ):
        if have != want:
            raise BenchError(f"{where}: this machine's {what} ({have[:12]}) is not the "
                             f"submission's ({want[:12]}): cannot verify against another "
                             "reference")  # fmt: skip
    return ctx, cfg


@contextmanager
def recorded_threads(record: ResultRecord) -> Iterator[None]:
    """Torch threads as the record's cell ran (its relearning is training, whose bits depend on
    the thread count), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(record.environment.get("threads") or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def reference_frame(record: ResultRecord, task, checkpoints=None):
    """The evidence columns of the original model and the oracle for a record's (task, seed),
    recomputed with this machine's models (`validate --recompute-reference`). Any method's frame
    from this reference shares them; the oracle's own evidence stands in for the method."""
    from benchmark.evaluation.probes import evidence_frame

    where = f"{record.task.identity} seed {record.seed}"
    ctx, _ = _context(record, task, where, task_recipe(record, task, where), checkpoints)
    with recorded_threads(record):
        ref = ctx.reference()
    return evidence_frame(task, ref, ref.oracle_evidence)


def verify_result(
    result_json: Path, out: Path, task_files=(), key=None, checkpoints=None
) -> tuple[Path, list[str]]:
    """Re-evaluate one cell. Returns (verified result path, mismatches); the verified result is
    written, its ledger entry signed with the board's private `key`, only when there is no
    mismatch."""
    from benchmark.app.cell import cell_metrics, check_unlearned
    from benchmark.evaluation.probes import (
        ServedModel,
        evaluate_unlearning,
        evidence_frame,
        run_model,
        task_protocol,
    )
    from benchmark.metrics.protocol import evaluation_problems
    from benchmark.results.write import save_verified
    from tasks import get_task, prepare_task

    record = ResultRecord.read(result_json)
    specs = {get_task(str(f)).identity: get_task(str(f)) for f in task_files}
    identity = record.task.identity
    spec = specs.get(identity) or get_task(record.task.name)
    if spec.identity != identity:
        raise BenchError(f"{result_json}: task {identity} is not known here (pass its task file)")
    problems = evaluation_problems(record.evaluation, task_protocol(spec, record.seed))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BenchError(f"{result_json}: {problems[0]}{more}")
    task = prepare_task(spec)
    if task.content_hash != record.task.data_hash:
        raise BenchError(f"{result_json}: task.data_hash is not this task's ({task.content_hash})")
    recipe = task_recipe(record, task, str(result_json))
    # every check of the artifacts comes before the base model and the oracle are built
    folder = artifacts_dir(result_json)
    model, sids, banned = load_artifacts(folder, task.n_items, base_model_config(recipe, task))
    ctx, cfg = _context(record, task, str(result_json), recipe, checkpoints)

    class Declared:  # what the checks need to know of the method; none of its code runs
        name = record.method.name
        changes_retain_sids = _declares_retain_sid_changes(name)

    from methods.base import Unlearned

    check_unlearned(Declared, Unlearned(model, sids, banned), task, ctx.base().sids)
    served = ServedModel(model, sids, banned)
    with recorded_threads(record):
        ref = ctx.reference()
        if record.reference:  # the oracle: scored on its own SIDs, as the reference was
            ran = run_model(task, ref.pools, served, cfg, [sids.codes], with_relearn=True)
            frame = evidence_frame(task, ref, ran)
        else:
            frame, _, _ = evaluate_unlearning(task, ref, served, cfg)
    metrics = cell_metrics(task, frame, cfg)
    mismatches = []
    for name, stat in metrics.items():
        have = record.metric(name)
        want = stat.value
        same = have is not None and (
            (math.isnan(want) and math.isnan(have)) or math.isclose(have, want, abs_tol=TOLERANCE)
        )
        if not same:
            mismatches.append(f"{name}: submitted {have}, re-evaluated {want}")
    path = record.path_under(out)
    if not mismatches:
        save_verified(out, path, record, frame, folder, key)
    return path, mismatches
