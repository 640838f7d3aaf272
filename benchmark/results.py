"""Result files: one JSON per (task, method, seed), written atomically (DESIGN §6)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmark import __version__

SCHEMA_VERSION = 1


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "threads": torch.get_num_threads(),
    }


def result_record(ctx, cell: dict) -> dict:
    task, method = ctx.task, cell["method"]
    base = ctx.base()
    return {
        "schema_version": SCHEMA_VERSION,
        "harness_version": __version__,
        "task": {
            "name": task.spec.name,
            "version": task.spec.version,
            "identity": task.spec.identity,
            "data_hash": task.content_hash,
        },
        "method": {
            "name": method.name,
            "version": method.version,
            "config": method.config_dict(),
            "config_hash": method.config_hash(),
        },
        "backbone": {
            "config": ctx.backbone_cfg.to_dict(),
            "config_hash": ctx.backbone_cfg.config_hash(),
            "checkpoint_sha256": base.checkpoint_hash,
        },
        "seed": ctx.seed,
        "metrics": cell["metrics"],
        "cost": cell["cost"],
        "environment": environment(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, allow_nan=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_result(path: Path, ctx, cell: dict, extra_cost: dict | None = None) -> dict:
    """The evidence parquet first, then the result JSON: a JSON on disk always has its evidence,
    and a run killed in between simply redoes the cell."""
    from benchmark.evidence import evidence_path, write_evidence_atomic

    record = result_record(ctx, cell)
    record["cost"].update(extra_cost or {})
    write_evidence_atomic(evidence_path(path), cell["evidence"])
    write_json_atomic(path, record)
    return record
