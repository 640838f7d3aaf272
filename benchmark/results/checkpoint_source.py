"""Base models and oracles from a board instead of training (`--checkpoints`): each read as
untrusted input (its hash against the board's results, its config against the task and recipe,
its weights against that config, its tokenizer) and placed in the model cache under the key
training would give it, so the harness reuses it as if it had trained it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.recommender.backbone import BackboneConfig, model_dir
from benchmark.recommender.model import load_checkpoint
from benchmark.recommender.sid import SemanticIds
from benchmark.results.checkpoints import (
    KINDS,
    CheckpointError,
    Pair,
    board_checkpoint,
    board_pairs,
    copy_checkpoint,
    holds,
)
from benchmark.results.record import ResultsError
from tasks.prepare import PreparedTask


@dataclass(frozen=True)
class CheckpointSource:
    """Where base models and oracles come from instead of training: one or more board folders (a
    Hub dataset is downloaded to one first: `resolve`), e.g. one board per task of a grid.
    `train_missing`: a (task, seed) no board has checkpoints for is trained as without a source,
    instead of refused."""

    boards: tuple[Path, ...]
    train_missing: bool = False
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def pair(self, identity: str, seed: int, cfg: BackboneConfig) -> Pair | None:
        if not self._index:  # the boards' results are read once
            self._index.update(_index(self.boards))
        board, pair = self._index.get((identity, seed, cfg.config_hash()), (None, None))
        if pair is None and not self.train_missing:
            named = ", ".join(map(str, self.boards))
            raise CheckpointError(f"{named}: no checkpoints of {identity} seed {seed} on recipe "
                                  f"{cfg.config_hash()[:12]} (the boards' results name none; "
                                  "--train-models trains them)")  # fmt: skip
        return pair

    def board(self, identity: str, seed: int, cfg: BackboneConfig) -> Path:
        return self._index[(identity, seed, cfg.config_hash())][0]

    def check(self, identity: str, seed: int, cfg: BackboneConfig) -> None:
        """Before a run: the board names this (task, seed)'s checkpoints and holds them
        unaltered (their hash); the rest is checked when they are installed."""
        pair = self.pair(identity, seed, cfg)
        if pair is not None:
            for kind in KINDS:
                board_checkpoint(self.board(identity, seed, cfg), kind, pair.sha(kind))

    def install(self, kind: str, task: PreparedTask, cfg: BackboneConfig, seed: int) -> None:
        """Place the board's base model ("models") or oracle ("oracles") of (task, seed) in the
        cache where training would put it (replacing one this machine trained)."""
        pair = self.pair(task.spec.identity, seed, cfg)
        if pair is None:
            return
        sha = pair.sha(kind)
        target = model_dir(kind, task, cfg, seed)
        if holds(target, sha):
            return
        source = board_checkpoint(self.board(task.spec.identity, seed, cfg), kind, sha)
        _check(source, kind, sha, task, cfg, seed)
        copy_checkpoint(source, target)


def _index(boards: tuple[Path, ...]) -> dict[tuple[str, int, str], tuple[Path, Pair]]:
    """(task identity, seed, recipe hash) -> the board that names its checkpoints, and them; a
    CheckpointError when two boards name different ones."""
    out: dict[tuple[str, int, str], tuple[Path, Pair]] = {}
    for board in boards:
        try:
            pairs = board_pairs(board)
        except ResultsError as exc:
            raise CheckpointError(str(exc)) from None
        for key, pair in pairs.items():
            seen = out.setdefault(key, (board, pair))
            if seen[1] != pair:
                raise CheckpointError(f"{board} and {seen[0]} name different checkpoints for "
                                      f"{key[0]} seed {key[1]}")  # fmt: skip
    return out


def _check(
    folder: Path, kind: str, sha: str, task: PreparedTask, cfg: BackboneConfig, seed: int
) -> None:
    """A board checkpoint read as untrusted input: its config (typed, in range) and weights
    (names, shapes, dtypes against that config), its tokenizer (codes in range, one row per
    item), and its metadata: this task's data, this recipe, this seed, this model's hash."""
    what = f"{folder}: the board's {KINDS[kind]}"
    sizes = (cfg.sid.codebook_size,) * cfg.sid.levels + (task.n_items,)
    sids = SemanticIds.load(folder / "sids.json", max_sizes=sizes, n_items=task.n_items)
    model, meta = load_checkpoint(folder)
    want = cfg.model_config(sids.sizes, task.spec.preprocess.max_history)
    data_key, data = (
        ("base_hash", task.base_hash) if kind == "models" else ("task_hash", task.content_hash)
    )
    log = meta.get("log")
    log = log if isinstance(log, dict) else {}
    recipe = model.cfg == want and meta.get("backbone") == _json(cfg.to_dict())
    problems = {
        "a model of another recipe": not recipe,
        f"trained with another seed than {seed}": meta.get("seed") != seed,
        f"trained on other data than {task.spec.identity}'s": meta.get(data_key) != data,
        "logged with another checkpoint_sha256 than its own": log.get("checkpoint_sha256") != sha,
    }
    for problem, found in problems.items():
        if found:
            raise CheckpointError(f"{what} is {problem}")


def _json(value: object) -> object:
    """`value` as JSON reads it back (tuples become lists)."""
    return json.loads(json.dumps(value))
