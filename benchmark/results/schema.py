"""The result file schema (DESIGN §6): one module, imported by the runner (writing), `validate`,
the leaderboard and `publish` (reading). No torch, no numpy.

Version 2 (protocol 2.0): oracle-anchored metrics over many test targets per user, the oracle's
checkpoint, and the evidence file's hash. Version 1 files (protocol 1.x: leave-one-out, forgetting
scored against zero) are refused with a clear message: their metrics mean something else and
cannot be migrated without re-running (their evidence lacks the oracle's ranks).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2
NUM, INT, STR, DICT, BOOL = "number", "integer", "string", "object", "boolean"
FIELDS: dict[str, str] = {
    "schema_version": INT, "harness_version": STR, "task": DICT, "task.name": STR,
    "task.version": STR, "task.identity": STR, "task.data_hash": STR, "task.protocol": STR,
    "method": DICT, "method.name": STR, "method.version": STR, "method.config": DICT,
    "method.config_hash": STR, "backbone": DICT, "backbone.config": DICT,
    "backbone.config_hash": STR, "backbone.checkpoint_sha256": STR, "oracle": DICT,
    "oracle.version": STR, "oracle.checkpoint_sha256": STR, "seed": INT, "reference": BOOL,
    "metrics": DICT, "cost": DICT, "cost.unlearn_seconds": NUM, "cost.peak_memory_mib": NUM,
    "evidence": DICT, "evidence.file": STR, "evidence.sha256": STR, "evidence.rows": INT,
    "environment": DICT, "environment.python": STR, "environment.torch": STR,
    "environment.platform": STR, "environment.git_revision": STR, "environment.threads": INT,
    "timestamp": STR,
}  # fmt: skip
STAT_FIELDS = {"value": NUM, "ci_low": NUM, "ci_high": NUM, "n": INT}
OLD_VERSION_MESSAGE = (
    "schema version {v} is a protocol 1.x result (leave-one-out, forgetting scored against "
    "zero); protocol 2.0 metrics cannot be derived from it: re-run the cell with this harness "
    "(tracer-bench run), or read it with tracer-bench 0.1"
)


def is_kind(value: Any, kind: str) -> bool:
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {STR: str, DICT: dict, BOOL: bool}[kind])


def get_field(record: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        record = record[part]
    return record


def schema_problems(rec: Any) -> list[tuple[str, str]]:
    """(field, message) for a record that is not a well-formed schema-2 result: an old schema
    version (refused), missing or mistyped fields."""
    if not isinstance(rec, dict):
        return [("", "not a JSON object")]
    version = rec.get("schema_version")
    if is_kind(version, INT) and version < SCHEMA_VERSION:
        return [("schema_version", OLD_VERSION_MESSAGE.format(v=version))]
    if is_kind(version, INT) and version != SCHEMA_VERSION:
        return [("schema_version", f"unknown schema version {version} (this harness reads "
                 f"{SCHEMA_VERSION})")]  # fmt: skip
    out = []
    for name, kind in FIELDS.items():
        try:
            value = get_field(rec, name)
        except (KeyError, TypeError):
            parent = name.rpartition(".")[0]
            if not parent or is_kind(rec.get(parent), DICT):
                out.append((name, "required field missing"))
            continue
        if not is_kind(value, kind):
            out.append((name, f"must be a JSON {kind}, got {type(value).__name__}"))
    return out
