"""The retrain oracle (DESIGN §5): the base recipe from scratch without the concept — its
tokenizer's collaborative features from retain-only interactions (forget items keep
content-based SIDs), forget items never targets (D_r only), early-stopped on retain-validation
users — trained once per (task, recipe, seed) and cached like base models. Every method of a
(task, seed) is scored against it.

Its name and role in scoring (`ORACLE`, `is_oracle`) live in the torch-free protocol
(`benchmark.metrics.protocol`), which the leaderboard may read; how it is trained and cached is
here; the cell evaluates its row on the application's oracle path (`benchmark.app.cell`), and the
registered method `retrain` delegates to `train_oracle`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from benchmark.recommender.backbone import BackboneConfig, cached_sid_model
from benchmark.recommender.model import SIDRecommender
from benchmark.recommender.sid import SemanticIds
from tasks.prepare import PreparedTask

ORACLE_VERSION = "2.0"  # the recipe above; results record it beside the checkpoint's sha256


@dataclass
class TrainedOracle:
    model: SIDRecommender
    sids: SemanticIds  # its own tokenizer
    log: dict = field(default_factory=dict)  # training log, checkpoint_sha256 included


def train_oracle(
    task: PreparedTask,
    cfg: BackboneConfig,
    seed: int,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
) -> TrainedOracle:
    """The oracle of (task, backbone recipe, seed), trained from scratch or read from the model
    cache: it needs no copy of the base model, so it can be built beside it."""
    ok = task.retain_mask[task.seq_items]  # D_r: targets in R (never a forgotten item either)
    model, sids, log, reused = cached_sid_model("oracles", task, cfg, seed, ok, progress, report)
    return TrainedOracle(model, sids, {"reused_cached_oracle": reused, **log})
