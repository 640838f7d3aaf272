"""A board's checkpoints (DESIGN §6): each (task, seed)'s base model and oracle travel with the
board, so a method is evaluated on the board's own models on any machine, without training them.

A board folder holds them under `checkpoints/<sha256>/` (the sha256 of the model's safetensors,
the one its results record as `backbone.checkpoint_sha256` / `oracle.checkpoint_sha256`): the
weights, the config (JSON) and the tokenizer (JSON + safetensors centroids), exactly as the model
cache keeps them. The board's results are the index: they say which checkpoint serves which
(task, seed, recipe). `pack` copies them from this machine's cache into a board; a
`benchmark.results.checkpoint_source.CheckpointSource` reads one back as untrusted input and
places it in the cache where training would put it. No torch: the leaderboard's publish reads
this module."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from benchmark.results.record import ResultRecord, result_files
from benchmark.util.atomic import folder_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError
from tasks.sources.common import cache_root
from tasks.untrusted import read_json_object

CHECKPOINTS = "checkpoints"  # the folder of a board that holds them
FILES = ("config.json", "model.safetensors", "sids.json", "sids.safetensors")
KINDS = {"models": "base model", "oracles": "oracle"}
HUB_SOURCE = re.compile(r"hf://datasets/(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+))?")


class CheckpointError(BenchError):
    """A board checkpoint that is missing, altered, or not the one its results name."""


@dataclass(frozen=True)
class Pair:
    """The base model and the oracle of one (task, seed, recipe), by their sha256."""

    base: str
    oracle: str

    def sha(self, kind: str) -> str:
        return self.base if kind == "models" else self.oracle


def board_pairs(root: Path) -> dict[tuple[str, int, str], Pair]:
    """(task identity, seed, recipe hash) -> the checkpoints the board's results name; a
    CheckpointError when two results of one (task, seed, recipe) name different ones."""
    out: dict[tuple[str, int, str], Pair] = {}
    for path in result_files(root):
        rec = ResultRecord.read(path)
        key = (rec.task.identity, rec.seed, rec.backbone.config_hash)
        pair = Pair(rec.backbone.checkpoint_sha256, rec.oracle.checkpoint_sha256)
        if out.setdefault(key, pair) != pair:
            raise CheckpointError(f"{path}: names other checkpoints than the board's other "
                                  f"results of {key[0]} seed {key[1]}")  # fmt: skip
    return out


def cached_checkpoints() -> dict[str, Path]:
    """This machine's cached base models and oracles, by the sha256 their config records."""
    out = {}
    for kind in KINDS:
        for config in sorted((cache_root() / kind).glob("*/*/config.json")):
            try:
                log = read_json_object(config).get("log")
            except BenchError:
                continue  # a damaged cache entry: training rebuilds it
            sha = log.get("checkpoint_sha256") if isinstance(log, dict) else None
            if isinstance(sha, str):
                out[sha] = config.parent
    return out


def pack(root: Path) -> tuple[list[str], list[str]]:
    """Copy the checkpoints the board's results name from this machine's cache into
    `root/checkpoints/` (those already there are kept). Returns (written, missing) sha256s."""
    root = Path(root)
    wanted = sorted({p.sha(k) for p in board_pairs(root).values() for k in KINDS})
    cached = cached_checkpoints()
    written, missing = [], []
    for sha in wanted:
        target = root / CHECKPOINTS / sha
        if holds(target, sha):
            continue
        source = cached.get(sha)
        if source is None or not holds(source, sha):
            missing.append(sha)
            continue
        copy_checkpoint(source, target)
        written.append(sha)
    return written, missing


def holds(folder: Path, sha: str) -> bool:
    """Whether `folder` holds a model whose safetensors has `sha`."""
    model = folder / "model.safetensors"
    return model.is_file() and file_digest(model) == sha


def copy_checkpoint(source: Path, target: Path) -> None:
    """A checkpoint's files copied into `target`, which appears whole or not at all."""
    with folder_atomic(target) as tmp:
        for name in FILES:
            shutil.copyfile(source / name, tmp / name)


def board_checkpoint(root: Path, kind: str, sha: str) -> Path:
    """The folder of a board's base model ("models") or oracle ("oracles") whose safetensors has
    `sha`; a CheckpointError naming it when it is missing or its hash is another."""
    folder = Path(root) / CHECKPOINTS / sha
    what = f"{folder}: the board's {KINDS[kind]}"
    if not all((folder / name).is_file() and not (folder / name).is_symlink() for name in FILES):
        raise CheckpointError(f"{what} is missing (want {', '.join(FILES)})")
    if file_digest(folder / "model.safetensors") != sha:
        raise CheckpointError(f"{what}: model.safetensors does not have the sha256 the "
                              "board's results record (altered or foreign)")  # fmt: skip
    return folder


def resolve(source: str) -> Path:
    """A board folder, or a Hub dataset `hf://datasets/<org>/<name>[@<revision>]` downloaded
    (its results and checkpoints, not its evidence) to the Hugging Face cache."""
    if not source.startswith("hf://"):
        root = Path(source)
        if not root.is_dir():
            raise CheckpointError(f"{source}: not a board folder")
        return root
    hub = HUB_SOURCE.fullmatch(source)
    if hub is None:
        raise CheckpointError(f"{source}: want hf://datasets/<org>/<name>[@<revision>]")
    from huggingface_hub import snapshot_download

    path = snapshot_download(
        hub["repo"], repo_type="dataset", revision=hub["revision"],
        allow_patterns=["*.json", f"{CHECKPOINTS}/**"],
    )  # fmt: skip
    return Path(path)
