"""The verification ledger (DESIGN §6): the board's own record of the results `tracer-bench verify`
re-evaluated from their artifacts. A result is *verified* only when the ledger at the root of its
results folder holds an entry for its path whose sha256 of the result JSON and of its evidence
match the files byte for byte; whatever a result file says of itself is never believed.

The ledger is one JSON-lines file, `verification-ledger.jsonl`, written only by `verify` (and
carried by the board's own `publish`, never by a submission's `publish --create-pr`). No torch."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from benchmark.metrics.evidence import evidence_path
from benchmark.util.atomic import write_text_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError

LEDGER_NAME = "verification-ledger.jsonl"
ENTRY_FIELDS = ("result", "result_sha256", "evidence_sha256", "artifacts_manifest_sha256",
                "harness_version", "timestamp")  # fmt: skip


def ledger_path(results_root: Path) -> Path:
    return Path(results_root) / LEDGER_NAME


def read_ledger(results_root: Path) -> dict[str, dict]:
    """Entries by result path (relative to the root, POSIX); {} without a ledger. A malformed
    ledger is a BenchError naming its line."""
    path = ledger_path(results_root)
    if not path.is_file():
        return {}
    entries: dict[str, dict] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise BenchError(f"{path}:{lineno}: not a JSON object ({exc})") from None
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in ENTRY_FIELDS
        ):
            raise BenchError(f"{path}:{lineno}: a ledger entry needs the strings {ENTRY_FIELDS}")
        name = PurePosixPath(entry["result"])
        if name.is_absolute() or ".." in name.parts:
            raise BenchError(f"{path}:{lineno}: result {entry['result']!r} is not a path inside "
                             "the results folder")  # fmt: skip
        entries[entry["result"]] = entry
    return entries


def fingerprint(result_json: Path) -> tuple[str, str]:
    """(sha256 of the result JSON, sha256 of its evidence; "" when the evidence is absent)."""
    evidence = evidence_path(result_json)
    return (
        file_digest(result_json),
        file_digest(evidence) if evidence.is_file() else "",
    )


def relative_name(results_root: Path, result_json: Path) -> str:
    return Path(result_json).resolve().relative_to(Path(results_root).resolve()).as_posix()


def is_verified(results_root: Path, result_json: Path, ledger: dict[str, dict]) -> bool:
    """True when the ledger's entry for this path matches the result and its evidence exactly."""
    entry = ledger.get(relative_name(results_root, result_json))
    if entry is None:
        return False
    result_sha, evidence_sha = fingerprint(result_json)
    return bool(evidence_sha) and (entry["result_sha256"], entry["evidence_sha256"]) == (
        result_sha,
        evidence_sha,
    )


def record_verified(
    results_root: Path, result_json: Path, artifacts_manifest_sha256: str, harness_version: str
) -> dict:
    """Add (or replace) the ledger entry of a result `verify` has just written; the ledger is
    rewritten atomically."""
    entries = read_ledger(results_root)
    result_sha, evidence_sha = fingerprint(result_json)
    entry = {
        "result": relative_name(results_root, result_json),
        "result_sha256": result_sha,
        "evidence_sha256": evidence_sha,
        "artifacts_manifest_sha256": artifacts_manifest_sha256,
        "harness_version": harness_version,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    entries[entry["result"]] = entry
    lines = [json.dumps(entries[k], sort_keys=True) for k in sorted(entries)]
    write_text_atomic(ledger_path(results_root), "\n".join(lines) + "\n")
    return entry
