"""The base model of a task: item features -> semantic IDs -> trained SID recommender, cached by
(task base hash, backbone config hash, seed): every concept on the same data shares it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from benchmark.recommender.features import FeatureConfig, item_features
from benchmark.recommender.model import (
    ModelConfig,
    SIDRecommender,
    load_checkpoint,
    save_checkpoint,
)
from benchmark.recommender.options import withdrawn_option
from benchmark.recommender.sid import SemanticIds, SIDConfig, fit_semantic_ids
from benchmark.recommender.train import (
    TrainConfig,
    ranking_metrics,
    recommend,
    seed_everything,
    train_model,
)
from benchmark.util.atomic import folder_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError, TaskFileError
from tasks.prepare import PreparedTask
from tasks.sources.common import cache_path
from tasks.spec import TaskSpec
from tasks.typed import typed


@dataclass(frozen=True)
class ArchConfig:
    """ModelConfig without the codebook sizes (those come from the tokenizer)."""

    d_model: int = 128
    n_heads: int = 4
    n_enc_layers: int = 2
    n_dec_layers: int = 1
    d_ff: int = 256
    dropout: float = 0.1
    attn_dropout: float = 0.0


@dataclass(frozen=True)
class BackboneConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    sid: SIDConfig = field(default_factory=SIDConfig)
    arch: ArchConfig = field(default_factory=ArchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        parts = {"features": self.features, "sid": self.sid, "train": self.train}
        return {**asdict(self), **{name: part.to_dict() for name, part in parts.items()}}

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def model_config(self, sizes: tuple[int, ...], max_history: int) -> ModelConfig:
        return ModelConfig(sizes=tuple(sizes), max_history=max_history, **asdict(self.arch))


def task_backbone(spec: TaskSpec) -> BackboneConfig:
    """The base recipe of a task: the harness default with the task file's [backbone.<part>]
    fields applied, each typed like the field it replaces."""
    cfg = BackboneConfig()
    for part, table in spec.backbone.items():
        parts = {f.name for f in fields(BackboneConfig)}
        if part not in parts:
            raise TaskFileError(f"task {spec.identity}: unknown table [backbone.{part}] "
                                f"(known: {', '.join(sorted(parts))})")  # fmt: skip
        section = getattr(cfg, part)
        for name in table:
            gone = withdrawn_option(type(section), name)
            if gone:
                raise TaskFileError(f"task {spec.identity}: field 'backbone.{part}.{name}': "
                                    f"{gone.refusal()}")  # fmt: skip
        where = f"task {spec.identity}"
        prefix = f"backbone.{part}"
        section = typed(
            type(section), table, where, prefix=prefix, base=section, error=TaskFileError
        )
        _check_limits(section, table, prefix, spec.identity)
        cfg = replace(cfg, **{part: section})
    return cfg


# what a task file may ask of the base recipe (a task file is untrusted input: these numbers
# decide allocations); any other integer field lies in [0, RECIPE_INT_LIMIT]
RECIPE_LIMITS = {
    "arch.d_model": 4096, "arch.n_heads": 64, "arch.n_enc_layers": 48, "arch.n_dec_layers": 48,
    "arch.d_ff": 16384, "sid.levels": 8, "sid.codebook_size": 4096, "train.batch_size": 65536,
    "features.tfidf_dim": 65536, "features.collab_dim": 4096,
}  # fmt: skip
RECIPE_INT_LIMIT = 10**6


def _check_limits(section: object, table: dict, prefix: str, identity: str) -> None:
    """The integers a task file sets lie within the recipe's limits (`RECIPE_LIMITS`)."""
    for name in table:
        value, where = getattr(section, name), f"{prefix}.{name}"
        limit = RECIPE_LIMITS.get(where.removeprefix("backbone."), RECIPE_INT_LIMIT)
        if type(value) is int and not 0 <= value <= limit:
            raise TaskFileError(f"task {identity}: field '{where}' must lie in [0, {limit}], got "
                                f"{value}")  # fmt: skip


@dataclass
class Backbone:
    """A trained base model with its tokenizer, and where it lives."""

    model: SIDRecommender
    sids: SemanticIds
    folder: Path
    log: dict

    @property
    def checkpoint_hash(self) -> str:
        return self.log["checkpoint_sha256"]


def model_dir(kind: str, task: PreparedTask, cfg: BackboneConfig, seed: int) -> Path:
    """The base model ("models") lives under the task's base hash, shared by every concept on the
    same data; the retrain oracle ("oracles") under the task's oracle hash (its D_r is the
    concept's; the same forget items on the same data share it, whatever the task's name)."""
    data = task.base_hash if kind == "models" else task.oracle_hash
    return cache_path(kind, data[:16], f"{cfg.config_hash()[:12]}-s{seed}")


def backbone_dir(task: PreparedTask, cfg: BackboneConfig, seed: int) -> Path:
    return model_dir("models", task, cfg, seed)


def cached_model(
    kind: str,
    task: PreparedTask,
    cfg: BackboneConfig,
    seed: int,
    build: Callable[[], tuple[SIDRecommender, dict]],
    files: Callable[[Path], None] | None = None,
) -> tuple[SIDRecommender, dict, bool]:
    """The model cached under (kind, task hash, config hash, seed), built by `build()` if absent
    or damaged. `files(folder)` writes companions (the tokenizer). Returns (model, log, reused).
    Everything is written to a temporary folder first and renamed into place."""
    folder = model_dir(kind, task, cfg, seed)
    with build_lock(folder):
        return _cached_model(kind, task, cfg, seed, build, files, folder)


_HELD: set[Path] = set()  # the build locks this process holds (a held lock is not taken again)


@contextmanager
def build_lock(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Held while a cached model is looked up and, if absent, built: a second process that
    wants the same model waits and then reuses it instead of training it again. An OS lock
    (released by the kernel when its process dies, however it dies); none where there is no
    `fcntl`. With `wait=False` it yields False at once when another process holds it (it is
    training that model). Taking a lock this process already holds yields True."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no waiting, at worst a model built twice
        yield True
        return
    if folder in _HELD:
        yield True
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        _HELD.add(folder)
        try:
            yield True
        finally:
            _HELD.discard(folder)
            fcntl.flock(handle, fcntl.LOCK_UN)


def cpu_name() -> str:
    """The processor's model name (kernels, hence float results, can differ between CPUs)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cached_model(kind, task, cfg, seed, build, files, folder: Path):
    if (folder / "config.json").exists():
        try:
            model, meta = load_checkpoint(folder)
            return model, meta["log"], True
        except (OSError, ValueError, KeyError, RuntimeError, BenchError) as exc:
            print(
                f"[tracer-bench] damaged checkpoint at {folder} ({exc}): rebuilding",
                file=sys.stderr,
            )
    model, log = build()
    with folder_atomic(folder) as tmp:
        if files is not None:
            files(tmp)
        save_checkpoint(model, tmp)
        log["checkpoint_sha256"] = file_digest(tmp / "model.safetensors")
        meta = {
            "kind": kind,
            "task": task.spec.identity,  # the task that built it (a base model serves others)
            "task_hash": task.content_hash,
            "base_hash": task.base_hash,
            "seed": seed,
            "backbone": cfg.to_dict(),
            # CPU training is bit for bit only at one thread count: say which built it
            "built_with": {
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "cpu": cpu_name(),
            },  # fmt: skip
            "log": log,
        }
        save_checkpoint(model, tmp, extra=meta)
    model.eval()
    return model, log, False


def load_backbone(folder: Path) -> Backbone:
    model, meta = load_checkpoint(folder)
    return Backbone(model, SemanticIds.load(folder / "sids.json"), folder, meta["log"])


def train_backbone(
    task: PreparedTask,
    cfg: BackboneConfig,
    seed: int,
    target_ok: np.ndarray | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> tuple[SIDRecommender, SemanticIds, dict]:
    """Features, tokenizer and a freshly trained model (not cached; see `get_backbone`). With
    `target_ok` (the retrain oracle: D_r only) the tokenizer's collaborative features come from
    retain-only interactions too, and validation uses retain-validation users only."""
    start = time.perf_counter()
    retain_only = target_ok is not None
    if report is not None:
        report("semantic IDs")
    sids = fit_semantic_ids(item_features(task, cfg.features, retain_only), cfg.sid.for_seed(seed))
    seed_everything(seed)
    model = SIDRecommender(cfg.model_config(sids.sizes, task.spec.preprocess.max_history))
    valid_users = task.retain_valid_users if retain_only else None
    log = train_model(
        model, task, sids.codes, sids.sizes, cfg.train, seed, target_ok, valid_users, progress,
        report,
    )  # fmt: skip
    log["total_seconds"] = time.perf_counter() - start
    return model, sids, log


def cached_sid_model(
    kind: str,
    task: PreparedTask,
    cfg: BackboneConfig,
    seed: int,
    target_ok: np.ndarray | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> tuple[SIDRecommender, SemanticIds, dict, bool]:
    """A model and its tokenizer cached under `kind` ("models": the base model; "oracles": the
    retrain oracle, `target_ok` its D_r mask), trained by `train_backbone` if absent.
    Returns (model, sids, log, reused)."""
    built = {}

    def build() -> tuple[SIDRecommender, dict]:
        model, built["sids"], log = train_backbone(task, cfg, seed, target_ok, progress, report)
        return model, log

    model, log, reused = cached_model(
        kind, task, cfg, seed, build, files=lambda d: built["sids"].save(d / "sids.json")
    )
    sids = SemanticIds.load(model_dir(kind, task, cfg, seed) / "sids.json")
    return model, sids, log, reused


def get_backbone(
    task: PreparedTask,
    cfg: BackboneConfig,
    seed: int,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> tuple[Backbone, bool]:
    """The cached base model for (task, config, seed), training it first if needed.
    Returns (backbone, reused)."""
    model, sids, log, reused = cached_sid_model("models", task, cfg, seed, None, progress, report)
    return Backbone(model, sids, backbone_dir(task, cfg, seed), log), reused


def evaluate_backbone(
    model: SIDRecommender,
    sids: SemanticIds,
    task: PreparedTask,
    split: str = "test",
    beam: int = 20,
    ks: tuple[int, ...] = (5, 10, 20),
) -> dict:
    """Recall/NDCG@K of all users on the validation or test targets, and the decoding time."""
    pos = task.test_pos if split == "test" else task.valid_pos
    start = time.perf_counter()
    topk = recommend(model, task, sids.codes, sids.sizes, pos, k=max(ks), beam=max(beam, max(ks)))
    seconds = time.perf_counter() - start
    return {
        **ranking_metrics(topk, task.seq_items[pos], ks),
        "decode_seconds": seconds,
        "users": len(pos),
    }


def popularity_metrics(task: PreparedTask, split: str = "test", ks=(5, 10, 20)) -> dict:
    """Most-popular baseline (training-part counts, the user's seen items excluded)."""
    pos = task.test_pos if split == "test" else task.valid_pos
    from benchmark.recommender.features import train_interactions

    _, train_items = train_interactions(task)
    counts = np.bincount(train_items, minlength=task.n_items).astype(float)
    order = np.argsort(-counts, kind="stable")
    kmax = max(ks)
    topk = np.empty((len(pos), kmax), dtype=np.int64)
    users = np.searchsorted(task.seq_offsets, pos, side="right") - 1
    for r, (u, p) in enumerate(zip(users, pos, strict=True)):
        seen = set(task.seq_items[task.seq_offsets[u] : p].tolist())
        topk[r] = [i for i in order[: kmax + len(seen)] if i not in seen][:kmax]
    return ranking_metrics(topk, task.seq_items[pos], ks)


def set_threads(n: int | None) -> None:
    torch.set_num_threads(n or os.cpu_count() or 1)
