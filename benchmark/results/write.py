"""Result files: one JSON per (task, method, seed), written atomically (DESIGN §6)."""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch

from benchmark import __version__
from benchmark.metrics.protocol import is_oracle
from benchmark.metrics.stat import MetricStat
from benchmark.results.record import (
    SCHEMA_VERSION,
    BackboneRef,
    EvidenceRef,
    MethodRef,
    OracleRef,
    ResultRecord,
    TaskRef,
)
from benchmark.util.atomic import write_bytes_atomic
from benchmark.util.hashing import bytes_digest, file_digest


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


@dataclasses.dataclass(frozen=True)
class CellCost:
    """What a cell cost: the method's unlearning (time, peak memory, its speed-up over the
    oracle's training), and the shared work around it (`tracer-bench perf` breaks it down)."""

    unlearn_seconds: float
    peak_memory_mib: float
    memory_increase_mib: float
    speedup_over_retrain: float
    retrain_seconds: float  # the oracle's tokenizer and training
    base_seconds: float  # the base model's tokenizer and training
    evaluation_seconds: float  # everything after the method returned
    evaluation_parts: dict[str, float]
    reference_seconds: float  # the original's and the oracle's evidence (NaN: not computed)


@dataclasses.dataclass(frozen=True)
class CellResult:
    """What one finished (task, method, seed) cell hands to its result record: what ran, on
    which models, the metrics with their intervals, the cost and the evidence."""

    task: TaskRef
    method: MethodRef
    backbone: BackboneRef
    oracle: OracleRef
    seed: int
    evaluation: dict  # the evaluation config, as `verify` re-evaluates with it
    metrics: dict[str, MetricStat]
    cost: CellCost
    evidence: pd.DataFrame

    def record(self, evidence: EvidenceRef, extra_cost: dict | None = None) -> ResultRecord:
        return ResultRecord(
            schema_version=SCHEMA_VERSION,
            harness_version=__version__,
            task=self.task,
            method=self.method,
            backbone=self.backbone,
            oracle=self.oracle,
            seed=self.seed,
            reference=is_oracle(self.method.name),
            metrics=self.metrics,
            cost={**dataclasses.asdict(self.cost), **(extra_cost or {})},
            evidence=evidence,
            environment=environment(),
            timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            evaluation=self.evaluation,
        )


def json_bytes(data: dict) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=True).encode("utf-8")


def write_json_atomic(path: Path, data: dict) -> None:
    write_bytes_atomic(path, json_bytes(data))


@dataclasses.dataclass(frozen=True)
class CellFiles:
    """A finished cell's files as bytes, made where the cell ran and written where the results
    live: the evidence parquet, the artifacts (when saved) and the result JSON, in that order and
    each atomically, so a JSON on disk always has everything beside it."""

    result: bytes
    evidence: bytes
    artifacts: dict[str, bytes] | None = None

    def write(self, path: Path) -> None:
        from benchmark.metrics.evidence import evidence_path
        from benchmark.results.artifacts import artifacts_dir, write_artifacts

        write_bytes_atomic(evidence_path(path), self.evidence)
        if self.artifacts is not None:
            write_artifacts(artifacts_dir(path), self.artifacts)
        write_bytes_atomic(path, self.result)


def cell_files(
    path: Path, cell: CellResult, extra_cost: dict | None = None,
    artifacts: dict[str, bytes] | None = None, tuning: dict | None = None,
    sequence: dict | None = None,
) -> CellFiles:  # fmt: skip
    """The files of the result to be written at `path`: the JSON records the evidence file's
    name and hash, and the artifacts' manifest hash (`validate` checks both)."""
    from benchmark.metrics.evidence import evidence_bytes, evidence_path
    from benchmark.results.artifacts import artifacts_dir

    ev = evidence_bytes(cell.evidence)
    evidence = EvidenceRef(evidence_path(path).name, bytes_digest(ev), len(cell.evidence))
    record = cell.record(evidence, extra_cost)
    if tuning is not None:
        record = dataclasses.replace(record, tuning=tuning)
    if sequence is not None:
        record = dataclasses.replace(record, sequence=sequence)
    if artifacts is not None:
        record = dataclasses.replace(record, artifacts={
            "folder": artifacts_dir(path).name,
            "manifest_sha256": bytes_digest(artifacts["manifest.json"]),
        })  # fmt: skip
    return CellFiles(record.to_json(), ev, artifacts)


def save_result(path: Path, cell: CellResult) -> None:
    """The evidence parquet first, then the result JSON (which records the evidence's hash): a
    JSON on disk always has its evidence, and a run killed in between simply redoes the cell."""
    cell_files(path, cell).write(path)


def save_verified(
    root: Path, path: Path, record: ResultRecord, frame, artifacts: Path, key
) -> ResultRecord:
    """A verified copy of a submitted result under the board's folder `root`: its evidence
    re-computed here, its artifacts beside it, and an entry in `root`'s verification ledger
    signed with the board's private `key` (`benchmark.results.ledger`). A `verification` block
    the submission carried is dropped: only the signed ledger says what was verified."""
    import shutil

    from benchmark.metrics.evidence import evidence_path, write_evidence_atomic
    from benchmark.results.artifacts import artifacts_dir
    from benchmark.results.ledger import record_verified
    from benchmark.util.atomic import folder_atomic

    ev_path = evidence_path(path)
    write_evidence_atomic(ev_path, frame)
    extra = {k: v for k, v in record.extra.items() if k != "verification"}
    evidence = EvidenceRef(ev_path.name, file_digest(ev_path), len(frame))
    out = dataclasses.replace(record, evidence=evidence, extra=extra)
    target = artifacts_dir(path)  # the verified model travels with its verified result
    if target.resolve() != artifacts.resolve():
        with folder_atomic(target) as tmp:
            shutil.copytree(artifacts, tmp, dirs_exist_ok=True)
    manifest = file_digest(target / "manifest.json")
    write_bytes_atomic(path, out.to_json())
    record_verified(root, path, manifest, record.task.identity, __version__, key)
    return out
