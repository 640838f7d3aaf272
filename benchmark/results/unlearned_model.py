"""The unlearned model to and from its artifact files (`benchmark.results.artifacts` has the
layout and the manifest): weights as safetensors, the config, the served SIDs and the ban as
JSON."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from benchmark.recommender.model import ModelConfig, SIDRecommender
from benchmark.recommender.sid import SemanticIds
from benchmark.results.artifacts import ARTIFACT_FORMAT, FILES, check_files, read_json
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError


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


def load_artifacts(folder: Path, n_items: int):
    """(model, served SIDs, ban or None) from a submission's artifacts, every file checked; a
    BenchError naming the file and the problem otherwise."""
    check_files(folder)
    try:
        sids = SemanticIds.load(folder / "sids.json")
    except (BenchError, KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{folder / 'sids.json'}: invalid SID table ({exc})") from None
    if sids.codes.shape[0] != n_items:
        raise BenchError(f"{folder / 'sids.json'}: {sids.codes.shape[0]} items, the task has "
                         f"{n_items}")  # fmt: skip
    try:
        cfg = ModelConfig.from_dict(read_json(folder / "model.json"))
    except (TypeError, KeyError) as exc:
        raise BenchError(f"{folder / 'model.json'}: not a model config ({exc})") from None
    if tuple(cfg.sizes) != tuple(sids.sizes):
        raise BenchError(f"{folder / 'model.json'}: codebooks {cfg.sizes} are not the SIDs' "
                         f"{sids.sizes}")  # fmt: skip
    model = SIDRecommender(cfg)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    path = folder / "model.safetensors"
    try:
        with safe_open(str(path), framework="pt") as fh:
            have = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
            biases = {k for k in have if k.startswith("head_bias.")}
            for k in biases:  # optional per-level output biases (TRACER's fresh tokens)
                level = k.split(".", 1)[1]
                if not level.isdigit() or have[k] != (cfg.sizes[int(level)],):
                    raise BenchError(f"{path}: tensor {k} has shape {have[k]}")
            if {k: s for k, s in have.items() if k not in biases} != want:
                diff = sorted(set(have) ^ set(want)) or [
                    k for k in want if have.get(k) != want[k]
                ]
                raise BenchError(f"{path}: tensors do not match the model config ({diff[:3]})")
            state = {k: fh.get_tensor(k) for k in have}
    except SafetensorError as exc:
        raise BenchError(f"{path}: not a safetensors file ({exc})") from None
    for k in biases:
        model.head_bias[k.split(".", 1)[1]] = torch.nn.Parameter(torch.zeros_like(state[k]))
    model.load_state_dict(state)
    model.eval()
    ban = read_json(folder / "ban.json")
    ids = ban.get("banned") if isinstance(ban, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and 0 <= i < n_items for i in ids):
        raise BenchError(f"{folder / 'ban.json'}: 'banned' must list item ids in 0..{n_items - 1}")
    banned = None
    if ban.get("applies"):
        banned = np.zeros(n_items, dtype=bool)
        banned[ids] = True
    return model, sids, banned
