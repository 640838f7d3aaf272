"""The unlearned model to and from its artifact files (`benchmark.results.artifacts` has the
layout and the manifest): weights as safetensors, the config, the served SIDs and the ban as
JSON."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from safetensors.torch import save_file

from benchmark.recommender.model import ModelConfig, model_from_weights, read_weights
from benchmark.recommender.sid import SemanticIds
from benchmark.results.artifacts import ARTIFACT_FORMAT, FILES, check_files
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError
from tasks.untrusted import read_json, read_json_object


def artifact_files(model, sids, banned) -> dict[str, bytes]:
    """The artifacts as bytes ({file name: bytes}, the manifest last), built in a temporary
    folder of this process: a worker returns them to the client, which writes them."""
    with tempfile.TemporaryDirectory(prefix="tracer-bench-artifacts-") as name:
        tmp = Path(name)
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / "model.safetensors"))
        (tmp / "model.json").write_text(json.dumps(model.cfg.to_dict(), sort_keys=True))
        SemanticIds(sids.codes, sids.sizes).save(tmp / "sids.json")
        ban = [] if banned is None else np.flatnonzero(banned).tolist()
        (tmp / "ban.json").write_text(json.dumps({"banned": ban, "applies": banned is not None}))
        manifest = {
            "format": ARTIFACT_FORMAT,
            "files": {n: {"bytes": (tmp / n).stat().st_size, "sha256": file_digest(tmp / n)}
                      for n in FILES},
        }  # fmt: skip
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return {n: (tmp / n).read_bytes() for n in (*FILES, "manifest.json")}


ARCH_FIELDS = ("d_model", "n_heads", "n_enc_layers", "n_dec_layers", "d_ff", "dropout",
               "attn_dropout", "max_history")  # fmt: skip
SMALL_JSON_BYTES = 2**16  # model.json and the fixed part of ban.json
JSON_INT_BYTES = 24  # an item id, its separator and a little room


def size_limits(base: ModelConfig, n_items: int) -> list[tuple[int, int]]:
    """(fewest, most) codes per SID level of an unlearned model of the base recipe `base`, whose
    last level (the collision code) is given at its largest, n_items. A method keeps every base
    code and may add fresh ones: TRACER adds one per original code that forget items use at one
    level, so at most the level's base size and at most one per item."""
    last = len(base.sizes) - 1
    return [(1 if level == last else size, size + min(size, n_items))
            for level, size in enumerate(base.sizes)]  # fmt: skip


def _model_config(path: Path, base: ModelConfig, n_items: int) -> ModelConfig:
    """model.json, typed and within the limits of the base recipe, before anything is built."""
    cfg = ModelConfig.from_untrusted(read_json(path, SMALL_JSON_BYTES), str(path))
    for name in ARCH_FIELDS:
        if getattr(cfg, name) != getattr(base, name):
            raise BenchError(f"{path}: {name} is {getattr(cfg, name)}, the base recipe's is "
                             f"{getattr(base, name)} (only codebook sizes may change)")  # fmt: skip
    if len(cfg.sizes) != len(base.sizes):
        raise BenchError(f"{path}: {len(cfg.sizes)} SID levels, the base recipe has "
                         f"{len(base.sizes)}")  # fmt: skip
    for level, (size, (low, high)) in enumerate(zip(cfg.sizes, size_limits(base, n_items),
                                                    strict=True)):  # fmt: skip
        if not low <= size <= high:
            raise BenchError(f"{path}: level {level} has {size} codes, the base recipe allows "
                             f"{low} to {high}")  # fmt: skip
    return cfg


def _ban(path: Path, n_items: int) -> np.ndarray | None:
    """ban.json, {"banned": [item ids], "applies": bool}: the mask, or None when none applies."""
    ban = read_json_object(path, SMALL_JSON_BYTES + n_items * JSON_INT_BYTES)
    if set(ban) != {"banned", "applies"}:
        raise BenchError(f"{path}: must hold exactly 'banned' and 'applies'")
    ids = ban["banned"]
    if not isinstance(ids, list) or not all(type(i) is int and 0 <= i < n_items for i in ids):
        raise BenchError(f"{path}: 'banned' must list item ids in 0..{n_items - 1}")
    if type(ban["applies"]) is not bool:
        raise BenchError(f"{path}: 'applies' must be true or false")
    if not ban["applies"]:
        return None
    banned = np.zeros(n_items, dtype=bool)
    banned[ids] = True
    return banned


def load_artifacts(folder: Path, n_items: int, base: ModelConfig):
    """(model, served SIDs, ban or None) from a submission's artifacts, for a task of `n_items`
    items and the base recipe's model config `base` (its last SID level at its largest,
    n_items). Every file is checked before anything is allocated from it: the manifest, the
    config against the base recipe (`size_limits`), the SID table against the config, the
    weights' header against the config. A one-line BenchError naming the file otherwise."""
    check_files(folder)
    cfg = _model_config(folder / "model.json", base, n_items)
    sids = SemanticIds.load(folder / "sids.json", cfg.sizes, n_items, centroids=False)
    if sids.sizes != cfg.sizes:
        raise BenchError(f"{folder / 'model.json'}: codebooks {list(cfg.sizes)} are not the "
                         f"SIDs' {list(sids.sizes)}")  # fmt: skip
    model = model_from_weights(cfg, read_weights(folder / "model.safetensors", cfg))
    return model, sids, _ban(folder / "ban.json", n_items)
