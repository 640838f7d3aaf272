"""The verification ledger (DESIGN §6): the board's signed record of the results `tracer-bench
verify` re-evaluated from their artifacts. A result is *verified* only when the ledger at the root
of the folder being read holds an entry for its path that

- matches the result JSON and its evidence byte for byte (sha256), and
- is signed (Ed25519) by a key the viewer trusts (`benchmark.results.keys`).

The signature covers the result's relative path, both sha256, the artifacts manifest's sha256,
the task identity, the harness version and the time. Anyone can compute a sha256 and a folder can
carry any file, so neither a ledger's presence nor its location proves anything; only the key
does. Whatever a result file says of itself is never believed.

The ledger is one JSON-lines file, `verification-ledger.jsonl`, written only by `verify` (and
carried by the board's own `publish`, never by a submission's `publish --create-pr`). No torch."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from benchmark.metrics.evidence import evidence_path
from benchmark.results.keys import public_text, sign, signature_valid
from benchmark.util.atomic import write_text_atomic
from benchmark.util.hashing import file_digest
from tasks.errors import BenchError
from tasks.untrusted import parse_json, read_bytes

LEDGER_NAME = "verification-ledger.jsonl"
HASH_FIELDS = ("result", "result_sha256", "evidence_sha256")
SIGNED_FIELDS = (*HASH_FIELDS, "artifacts_manifest_sha256", "task", "harness_version",
                 "timestamp")  # fmt: skip
DOMAIN = b"tracer-bench verification ledger entry v1\n"
MAX_LEDGER_BYTES = 64 * 2**20

VERIFIED = "verified"


def ledger_path(results_root: Path) -> Path:
    return Path(results_root) / LEDGER_NAME


def stray_ledgers(results_root: Path) -> list[Path]:
    """Ledgers anywhere under the folder but at its root (none of them counts)."""
    root = Path(results_root)
    return sorted(p for p in root.rglob(LEDGER_NAME) if p.parent != root)


def read_ledger(results_root: Path) -> dict[str, dict]:
    """Entries by result path (relative to the root, POSIX); {} without a ledger. A malformed
    ledger is a BenchError naming its line; unsigned entries are kept (their status says so)."""
    path = ledger_path(results_root)
    if not path.is_file() and not path.is_symlink():
        return {}
    text = read_bytes(path, MAX_LEDGER_BYTES).decode("utf-8", errors="replace")
    entries: dict[str, dict] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entry = parse_json(line, str(path), lineno=lineno)
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(k), str) for k in HASH_FIELDS
        ):
            raise BenchError(f"{path}:{lineno}: a ledger entry needs the strings {HASH_FIELDS}")
        name = PurePosixPath(entry["result"])
        if name.is_absolute() or ".." in name.parts:
            raise BenchError(f"{path}:{lineno}: result {entry['result']!r} is not a path inside "
                             "the results folder")  # fmt: skip
        if entry["result"] in entries:
            raise BenchError(f"{path}:{lineno}: a second entry for {entry['result']}")
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
    """The result's path relative to the root, POSIX (symbolic links are not followed)."""
    rel = os.path.relpath(os.path.abspath(result_json), os.path.abspath(results_root))
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        raise BenchError(f"{result_json}: not inside the results folder {results_root}")
    return PurePosixPath(*Path(rel).parts).as_posix()


def signed_payload(entry: Mapping) -> bytes:
    body = {k: entry.get(k, "") for k in SIGNED_FIELDS}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")


def entry_status(entry: Mapping | None, result_json: Path, trusted: Mapping) -> str:
    """VERIFIED, or why not: 'no ledger entry', 'unsigned', 'signed by a key not trusted here',
    'signature does not verify', 'changed since it was verified'."""
    if entry is None:
        return "no ledger entry"
    signature, key = entry.get("signature"), entry.get("key")
    if not isinstance(signature, str) or not isinstance(key, str) or not signature:
        return "unsigned"
    if key not in trusted:
        return f"signed by a key not trusted here ({key[:20]}…)"
    if not signature_valid(trusted[key], signed_payload(entry), signature):
        return "signature does not verify"
    result_sha, evidence_sha = fingerprint(result_json)
    if not evidence_sha or (entry["result_sha256"], entry["evidence_sha256"]) != (
        result_sha,
        evidence_sha,
    ):
        return "changed since it was verified"
    return VERIFIED


def is_verified(
    results_root: Path, result_json: Path, ledger: Mapping[str, dict], trusted: Mapping
) -> bool:
    """True when the root ledger's entry for this path is signed by a trusted key and matches the
    result and its evidence exactly."""
    entry = ledger.get(relative_name(results_root, result_json))
    return entry_status(entry, result_json, trusted) == VERIFIED


def _write(results_root: Path, entries: Mapping[str, dict]) -> None:
    lines = [json.dumps(entries[k], sort_keys=True) for k in sorted(entries)]
    write_text_atomic(ledger_path(results_root), "\n".join(lines) + "\n")


def signed_entry(fields: dict, key) -> dict:
    entry = {**fields, "key": public_text(key.public_key())}
    entry["signature"] = sign(key, signed_payload(entry))
    return entry


def record_verified(
    results_root: Path,
    result_json: Path,
    artifacts_manifest_sha256: str,
    task_identity: str,
    harness_version: str,
    key,
) -> dict:
    """Add (or replace) the signed ledger entry of a result `verify` has just written; the ledger
    is rewritten atomically. `key`: the board's Ed25519 private key."""
    entries = read_ledger(results_root)
    result_sha, evidence_sha = fingerprint(result_json)
    entry = signed_entry(
        {
            "result": relative_name(results_root, result_json),
            "result_sha256": result_sha,
            "evidence_sha256": evidence_sha,
            "artifacts_manifest_sha256": artifacts_manifest_sha256,
            "task": task_identity,
            "harness_version": harness_version,
            "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
        key,
    )
    entries[entry["result"]] = entry
    _write(results_root, entries)
    return entry


def resign(results_root: Path, key, trusted: Mapping) -> tuple[int, list[str]]:
    """Key rotation: re-sign with `key` every entry that is verified under a trusted (old) key.
    Returns (entries re-signed, the others with their status); the others are dropped."""
    from benchmark.results.record import result_files

    entries = read_ledger(results_root)
    files = {relative_name(results_root, f): f for f in result_files(results_root)}
    kept, dropped = {}, []
    for name, entry in entries.items():
        status = entry_status(entry, files[name], trusted) if name in files else "no such result"
        if status == VERIFIED:
            fields = {k: entry[k] for k in SIGNED_FIELDS if k in entry}
            kept[name] = signed_entry(fields, key)
        else:
            dropped.append(f"{name}: {status}")
    _write(results_root, kept)
    return len(kept), dropped
