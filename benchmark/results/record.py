"""The result record (DESIGN §6): one typed class that writes, reads and checks result files and
refuses old versions (as MTEB's `TaskResult`), and the one place that says where results live.

A results folder holds `<task>/<method>/seed<N>.json`, with `seed<N>.evidence.parquet` (and, when
saved, `seed<N>.artifacts/`) beside it; `seed<N>.failed.json` is a failed cell. No torch, no numpy.

Version 3 (protocol 2.1): version 2's oracle-anchored metrics, with the utility part taken
against the original model served with the forget items banned (its evidence carries
`banned_rank`). Version 2 files (protocol 2.0) are refused with a clear message: their evidence
lacks that column, which only a decode of the original model gives. Version 1 files (protocol
1.x: leave-one-out, forgetting scored against zero) are refused too: their metrics mean something
else and their evidence lacks the oracle's ranks.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.metrics.stat import MetricStat
from tasks.errors import BenchError
from tasks.typed import typed
from tasks.untrusted import read_json

MAX_RESULT_BYTES = 16 * 2**20

SCHEMA_VERSION = 3
NUM, INT, STR, DICT, BOOL = "number", "integer", "string", "object", "boolean"
OLD_VERSION_MESSAGE = (
    "schema version {v} is a protocol 1.x result (leave-one-out, forgetting scored against "
    "zero); protocol 2.1 metrics cannot be derived from it: re-run the cell with this harness "
    "(tracer-bench run), or read it with tracer-bench 0.1"
)
PROTOCOL_2_0_MESSAGE = (
    "schema version 2 is a protocol 2.0 result (utility against the plain original model); its "
    "evidence lacks the column banned_rank (the original served with the concept banned), so "
    "the protocol 2.1 utility part cannot be derived from it: re-run the cell with this harness "
    "(tracer-bench run; cached models are reused), or read it with tracer-bench 0.6"
)


class ResultsError(BenchError):
    """A results folder that is missing or empty, or a result file that cannot be read."""


# --- where results live ---
RESULT_NAME = re.compile(r"seed(\d+)\.json")
FAILED_NAME = re.compile(r"seed(\d+)\.failed\.json")


def result_path(root: Path, task: str, method: str, seed: int) -> Path:
    return Path(root) / task / method / f"seed{seed}.json"


def failure_path(root: Path, task: str, method: str, seed: int) -> Path:
    return Path(root) / task / method / f"seed{seed}.failed.json"


def symlinks_in(root: Path) -> list[Path]:
    """Symbolic links anywhere in a results folder (a result, evidence or artifact file that
    points elsewhere would be read from outside the folder)."""
    root = Path(root)
    if root.is_symlink():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_symlink())


def result_files(root: Path) -> list[Path]:
    """The result JSONs under a results folder (`<task>/<method>/seed<N>.json`), sorted; a
    ResultsError when the folder holds a symbolic link."""
    links = symlinks_in(root)
    if links:
        more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
        raise ResultsError(f"{links[0]}: a symbolic link in a results folder (refused: every file "
                           f"must lie in the folder itself){more}")  # fmt: skip
    return sorted(
        p for p in Path(root).rglob("seed*.json") if RESULT_NAME.fullmatch(p.name) and p.is_file()
    )


def failure_files(root: Path) -> list[Path]:
    """The failed cells' files (`<task>/<method>/seed<N>.failed.json`), sorted."""
    return sorted(
        p for p in Path(root).rglob("seed*.json") if FAILED_NAME.fullmatch(p.name) and p.is_file()
    )


# --- the record ---
def _required(**kinds: str) -> dict:
    """Field metadata: the keys a free-form object must hold, with their JSON kinds."""
    return {"required": kinds}


@dataclass(frozen=True)
class TaskRef:
    name: str
    version: str
    identity: str
    data_hash: str
    protocol: str


@dataclass(frozen=True)
class MethodRef:
    name: str
    version: str
    config: dict
    config_hash: str


@dataclass(frozen=True)
class BackboneRef:
    config: dict
    config_hash: str
    checkpoint_sha256: str


@dataclass(frozen=True)
class OracleRef:
    version: str
    checkpoint_sha256: str


@dataclass(frozen=True)
class EvidenceRef:
    file: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class ResultRecord:
    """One (task, method, seed) result. `extra` keeps the fields this version does not type
    (a submission's own additions), so a record read and written again is the same JSON."""

    schema_version: int
    harness_version: str
    task: TaskRef
    method: MethodRef
    backbone: BackboneRef
    oracle: OracleRef
    seed: int
    reference: bool  # the retrain row: the reference its own cell is scored against, never ranked
    metrics: dict[str, MetricStat]
    cost: dict = field(metadata=_required(unlearn_seconds=NUM, peak_memory_mib=NUM))
    evidence: EvidenceRef
    environment: dict = field(
        metadata=_required(python=STR, torch=STR, platform=STR, git_revision=STR, threads=INT)
    )
    timestamp: str
    evaluation: dict | None = None  # the evaluation config (what `verify` re-evaluates with)
    artifacts: dict | None = None  # {"folder", "manifest_sha256"} when artifacts were saved
    # a `tracer-bench tune` result: the search, the budget and the validation scores behind the
    # config (benchmark.app.tune); absent at a method's defaults
    tuning: dict | None = None
    # a step of a sequential task: the sequence, the step, the chain's model hashes, cumulative
    # costs and the per-request forgetting (benchmark.app.sequence)
    sequence: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for name in ("evaluation", "artifacts", "tuning", "sequence"):
            if out[name] is None:
                del out[name]
        return {**out.pop("extra"), **out}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=True).encode()

    @classmethod
    def from_dict(cls, data: Any, where: str = "<record>") -> ResultRecord:
        """The record of a parsed result file; a ResultsError naming `where` and the first problem
        (an old schema version, a missing or mistyped field) otherwise."""
        problems = schema_problems(data)
        if problems:
            name, message = problems[0]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            at = f"field '{name}': " if name and name != "schema_version" else ""
            raise ResultsError(f"{where}: {at}{message}{more}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        body = {k: v for k, v in data.items() if k in known}
        # nested objects drop the keys this version does not know; a NaN statistic is "undefined"
        rec = typed(cls, body, where, unknown="drop", finite=False, error=ResultsError)
        return dataclasses.replace(rec, extra={k: v for k, v in data.items() if k not in known})

    @classmethod
    def read(cls, path: str | Path) -> ResultRecord:
        try:
            data = read_json(path, MAX_RESULT_BYTES, allow_nan=True)
        except BenchError as exc:
            raise ResultsError(str(exc)) from None
        if not isinstance(data, dict):
            raise ResultsError(f"{path}: a result file holds a JSON object")
        return cls.from_dict(data, str(path))

    def metric(self, name: str) -> float | None:
        """A metric's value (None when the record does not hold it)."""
        stat = self.metrics.get(name)
        return None if stat is None else stat.value

    def path_under(self, root: Path) -> Path:
        return result_path(root, self.task.name, self.method.name, self.seed)


# --- the checks, derived from the record's own fields ---
_KINDS = {str: STR, int: INT, float: NUM, bool: BOOL, dict: DICT}
_UnionType = type(int | None)  # `X | None`: an optional field


def _schema_fields(cls: type, prefix: str = "") -> dict[str, str]:
    out = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if f.name == "extra" or typing.get_origin(tp) in (typing.Union, _UnionType):
            continue  # optional fields
        name = prefix + f.name
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out[name] = DICT
            out.update(_schema_fields(tp, name + "."))
        else:
            out[name] = _KINDS[typing.get_origin(tp) or tp]
            for key, kind in f.metadata.get("required", {}).items():
                out[f"{name}.{key}"] = kind
    return out


FIELDS: dict[str, str] = _schema_fields(ResultRecord)  # dotted name -> JSON kind, all required
STAT_FIELDS = {name: _KINDS[tp] for name, tp in typing.get_type_hints(MetricStat).items()}


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
    """(field, message) for a record that is not a well-formed schema-3 result: an old schema
    version (refused), missing or mistyped fields."""
    if not isinstance(rec, dict):
        return [("", "not a JSON object")]
    version = rec.get("schema_version")
    if is_kind(version, INT):
        version = typing.cast(int, version)  # checked just above: an int, not a bool
        if version == 2:
            return [("schema_version", PROTOCOL_2_0_MESSAGE)]
        if version < SCHEMA_VERSION:
            return [("schema_version", OLD_VERSION_MESSAGE.format(v=version))]
        if version != SCHEMA_VERSION:
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
    return out + stat_problems(rec.get("metrics"))


def stat_problems(metrics: Any) -> list[tuple[str, str]]:
    """Each metric's statistic an object of `STAT_FIELDS` (what `MetricStat` reads)."""
    if not isinstance(metrics, dict):
        return []  # reported as the field's kind
    out = []
    for name, stat in metrics.items():
        at = f"metrics.{name}"
        if not isinstance(stat, dict):
            out.append((at, "must be an object with value, ci_low, ci_high, n"))
            continue
        out += [(f"{at}.{s}", f"missing or not a JSON {kind}") for s, kind in STAT_FIELDS.items()
                if not is_kind(stat.get(s), kind)]  # fmt: skip
    return out
