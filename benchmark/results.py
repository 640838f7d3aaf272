"""Result files: one JSON per (task, method, seed), written atomically (DESIGN §6)."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from benchmark import __version__
from benchmark.atomic import write_text_atomic

SCHEMA_VERSION = 1


def git_revision() -> str:
    """HEAD of the harness's checkout, with "-dirty" when it has uncommitted changes."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return ""
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "threads": torch.get_num_threads(),
        "device": str(getattr(torch, "get_default_device", lambda: "cpu")()),
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
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True))


def save_result(path: Path, ctx, cell: dict, extra_cost: dict | None = None) -> dict:
    """The evidence parquet first, then the result JSON: a JSON on disk always has its evidence,
    and a run killed in between simply redoes the cell."""
    from benchmark.evidence import evidence_path, write_evidence_atomic

    record = result_record(ctx, cell)
    record["cost"].update(extra_cost or {})
    write_evidence_atomic(evidence_path(path), cell["evidence"])
    write_json_atomic(path, record)
    return record
