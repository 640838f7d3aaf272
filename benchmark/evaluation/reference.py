"""The original model's and the oracle's evidence, and the original's lists with the concept
banned, cached on disk per (task, seed): every run of a (task, seed) is scored against the same
models on the same pools, so a second run (a researcher trying one more method) reads their
evidence instead of decoding, scoring and relearning them again (reports/profile-cpu.md, section 9).

An entry's key covers everything its arrays depend on: the model's weights and served SIDs, the
task's content hash, the evaluation config, the harness version, the torch thread count and the
device (CPU results are bit-for-bit reproducible only for one thread count). Entries are
safetensors (no pickle), written to a temporary file and renamed; one that does not load or does
not fit the pools is recomputed. A lock per entry makes the second of two processes that need it
wait and read it, so the two parts of a split (task, seed) group compute one model each.
`reuse=False` (`validate --recompute-reference`, `verify`) computes anew and stores the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmark import __version__
from benchmark.evaluation.probes import EvalConfig, ModelEvidence, Pools, ServedModel, run_model
from benchmark.recommender.backbone import build_lock
from benchmark.util.atomic import written_atomic
from tasks.prepare import PreparedTask
from tasks.sources.common import cache_path


def evidence_key(
    task: PreparedTask,
    sm: ServedModel,
    cfg: EvalConfig,
    latent_codes: list[np.ndarray],
    with_relearn: bool,
) -> str:
    """sha256 of everything `run_model`'s evidence of a model depends on."""
    params = list(sm.model.parameters())
    meta = {
        "harness": __version__,
        "task": task.content_hash,
        "evaluation": dataclasses.asdict(cfg),
        "with_relearn": with_relearn,
        "threads": torch.get_num_threads(),
        "device": str(params[0].device) if params else "cpu",
        "sizes": [int(s) for s in sm.sids.sizes],
        "banned": None if sm.banned is None else np.flatnonzero(sm.banned).tolist(),
    }
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name, value in sorted(sm.model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    for codes in [sm.sids.codes, *latent_codes]:
        h.update(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
    return h.hexdigest()


def cached_evidence(
    task: PreparedTask,
    pools: Pools,
    sm: ServedModel,
    cfg: EvalConfig,
    latent_codes: list[np.ndarray],
    with_relearn: bool,
    reuse: bool = True,
) -> tuple[ModelEvidence, float]:
    """`run_model(task, pools, sm, cfg, latent_codes, with_relearn)`, read from the cache when
    there (unless `reuse` is off: then computed and stored anew). Returns (evidence, seconds of
    work: computing or reading it, not waiting for another process's lock)."""
    key = evidence_key(task, sm, cfg, latent_codes, with_relearn)
    # a reference relearns the oracle only, and bans the concept from the original only
    role = "oracle" if with_relearn else "original" if sm.banned is None else "banned"
    path = cache_path("evidence", task.content_hash[:16], f"{role}-{key[:32]}.safetensors")
    kmax = max(cfg.k_values(task))
    n_latent = len(pools.latent_rows) if latent_codes else 0
    shapes = {"topk": (len(pools.all_pos), kmax), "latent": (n_latent,)}
    if with_relearn:
        shapes["relearned"] = (len(pools.forget_set_pos),)
    with build_lock(path):
        start = time.perf_counter()
        evidence = _load(path, key, shapes) if reuse else None
        if evidence is None:
            evidence = run_model(task, pools, sm, cfg, latent_codes, with_relearn)
            _save(path, key, evidence)
        return evidence, time.perf_counter() - start


def _load(path: Path, key: str, shapes: dict[str, tuple]) -> ModelEvidence | None:
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            arrays = {name: f.get_tensor(name) for name in f.keys()}
        seconds = json.loads(meta.get("seconds", "{}"))
    except (OSError, ValueError, SafetensorError):
        return None
    if meta.get("key") != key or set(arrays) != set(shapes):
        return None
    if any(arrays[name].shape != shape for name, shape in shapes.items()):
        return None
    return ModelEvidence(arrays["topk"], arrays["latent"], arrays.get("relearned"), seconds)


def _save(path: Path, key: str, ev: ModelEvidence) -> None:
    from safetensors.numpy import save_file

    arrays = {"topk": np.ascontiguousarray(ev.topk), "latent": np.ascontiguousarray(ev.latent)}
    if ev.relearned is not None:
        arrays["relearned"] = np.ascontiguousarray(ev.relearned)
    with written_atomic(path) as tmp:
        save_file(arrays, str(tmp), metadata={"key": key, "seconds": json.dumps(ev.seconds)})
