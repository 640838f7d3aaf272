"""The method API: an unlearning method turns the base model into an unlearned one.

A method receives its own copy of the trained base model (the harness keeps the original as the
evaluation reference), its tokenizer and the prepared task, and returns the unlearned model, the
tokenizer it serves with (possibly changed) and any decode-time ban. Its task is a
`tasks.prepare.MethodTaskView`: training data (D_f = task.d_forget, D_r = task.d_retain, via
task.train_pos), the concept's items (task.forget_mask) and validation targets (task.valid_pos),
as read-only arrays — the test targets are not in it. What it returns is checked
(`benchmark.app.cell.check_unlearned`) before evaluation.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from benchmark.recommender.backbone import BackboneConfig
from benchmark.recommender.model import SIDRecommender
from benchmark.recommender.sid import SemanticIds
from tasks.prepare import PreparedTask


@dataclass
class Unlearned:
    model: SIDRecommender
    sids: SemanticIds  # the served tokenizer
    banned: np.ndarray | None = None  # bool per item: never served (decode-time rule)
    log: dict = field(default_factory=dict)


@dataclass
class MethodInputs:
    base: SIDRecommender
    sids: SemanticIds
    task: PreparedTask
    backbone: BackboneConfig  # how the base model was built and trained (the oracle reuses it)
    seed: int
    progress: bool = False
    # a one-line status sink for long steps (the runner's progress bar shows it), or None
    report: Callable[[str], None] | None = None
    # the decode-time ban the model is served with (a sequence's earlier requests'), or None; the
    # harness keeps serving it whatever the method returns (a ban, once served, stays)
    banned: np.ndarray | None = None


class UnlearningMethod:
    """Subclass with `name`, `version`, a `Config` dataclass (with defaults), `unlearn`, and the
    `search_space` of the few Config fields worth tuning."""

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type]
    # may the served tokenizer give retain items other SIDs than the base tokenizer? (checked)
    changes_retain_sids: ClassVar[bool] = False
    # the hyper-parameters `tracer-bench tune` searches, Config field -> range (methods.search)
    search_space: ClassVar[dict] = {}
    # an ablation of another method: tuned as that method's chosen configuration, not searched
    tune_as: ClassVar[str | None] = None

    def __init__(self, config: Any = None, **overrides: Any):
        base = config if config is not None else self.Config()
        self.config = dataclasses.replace(base, **overrides) if overrides else base

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def config_hash(self) -> str:
        blob = json.dumps(
            {"name": self.name, "version": self.version, **self.config_dict()}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def unlearn(self, inputs: MethodInputs) -> Unlearned:
        raise NotImplementedError
