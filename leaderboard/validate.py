"""Validate a submission — a results folder or one result JSON — without executing anything from
it (DESIGN §6): schema, task identity and data hash, config hashes, metric names and ranges, the
headline score against its parts, complete seeds, and agreement with the evidence files."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.evidence import evidence_path
from benchmark.metrics import METRICS
from benchmark.unlearning_metrics import HEADLINE_PARTS, harmonic
from leaderboard.evidence import evidence_problems, recompute_metrics
from tasks.errors import BenchError

SCHEMA_VERSIONS = {1}
HEADLINE_TOL = 1e-6
EVIDENCE_TOL = 1e-9
NUM, INT, STR, DICT = "number", "integer", "string", "object"
SCHEMA: dict[str, str] = {
    "schema_version": INT, "harness_version": STR, "task": DICT, "task.name": STR,
    "task.version": STR, "task.identity": STR, "task.data_hash": STR, "method": DICT,
    "method.name": STR, "method.version": STR, "method.config": DICT, "method.config_hash": STR,
    "backbone": DICT, "backbone.config": DICT, "backbone.config_hash": STR,
    "backbone.checkpoint_sha256": STR, "seed": INT, "metrics": DICT, "cost": DICT,
    "cost.unlearn_seconds": NUM, "cost.peak_memory_mib": NUM, "environment": DICT,
    "environment.python": STR, "environment.torch": STR, "environment.platform": STR,
    "environment.git_revision": STR, "environment.threads": INT, "timestamp": STR,
}  # fmt: skip
STAT_FIELDS = {"value": NUM, "ci_low": NUM, "ci_high": NUM, "n": INT}
UNIT = {"recall", "ndcg", "fe", "ce", "fe_latent", "erasure_score", "forgetting_part",
        "utility_part"}  # fmt: skip
RESULT_NAME = re.compile(r"seed(\d+)\.json")


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '-'}: {self.message}"


def result_files(root: Path) -> list[Path]:
    """The result JSONs under a results folder (`<task>/<method>/seed<N>.json`), sorted."""
    return sorted(p for p in root.rglob("seed*.json") if RESULT_NAME.fullmatch(p.name))


def _is(value: Any, kind: str) -> bool:
    if kind == INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == NUM:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, {STR: str, DICT: dict}[kind])


def _get(record: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        record = record[part]
    return record


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _range(base: str) -> tuple[float, float]:
    if base in UNIT or (base.split("_")[-1] in ("recall", "ndcg")):
        return 0.0, 1.0
    if base == "latent_forget_mean_rank":
        return 1.0, math.inf
    if base == "retain_geometry_spearman":
        return -1.0, 1.0
    return 0.0, math.inf  # ratios, seconds, memory, speed-up


def _close(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


class Validator:
    """Checks result records; prepares each task once, lazily, for its data hash."""

    def __init__(self, task_files: Iterable[str | Path] = ()) -> None:
        from tasks import get_task, standard_tasks

        self.specs = {s.identity: s for s in standard_tasks().values()}
        self.specs.update({s.identity: s for s in (get_task(str(f)) for f in task_files)})
        self._hashes: dict[str, str | BenchError] = {}

    def data_hash(self, identity: str) -> str | BenchError:
        if identity not in self._hashes:
            from tasks import prepare_task

            try:
                self._hashes[identity] = prepare_task(self.specs[identity]).content_hash
            except (BenchError, OSError) as exc:
                self._hashes[identity] = BenchError(str(exc))
        return self._hashes[identity]

    def schema(self, rec: Any) -> list[tuple[str, str]]:
        """(field, message) for a parsed record's missing or mistyped fields."""
        if not isinstance(rec, dict):
            return [("", "not a JSON object")]
        version = rec.get("schema_version")
        if _is(version, INT) and version not in SCHEMA_VERSIONS:
            return [("schema_version", f"unknown schema version {version}")]
        out = []
        for name, kind in SCHEMA.items():
            try:
                value = _get(rec, name)
            except (KeyError, TypeError):
                parent = name.rpartition(".")[0]
                if not parent or _is(rec.get(parent), DICT):
                    out.append((name, "required field missing"))
                continue
            if not _is(value, kind):
                out.append((name, f"must be a JSON {kind}, got {type(value).__name__}"))
        return out

    def content(self, rec: dict) -> list[tuple[str, str]]:
        """(field, message) for a well-formed record: identity, hashes, metric names and values."""
        return self._identity(rec) + self._metrics(rec["metrics"])

    def _identity(self, rec: dict) -> list[tuple[str, str]]:
        task, method, bb = rec["task"], rec["method"], rec["backbone"]
        out = []
        if task["identity"] != f"{task['name']}@{task['version']}":
            out.append(("task.identity", "is not task.name@task.version"))
        if task["identity"] not in self.specs:
            out.append(("task.identity", f"unknown task {task['identity']!r}"))
        else:
            digest = self.data_hash(task["identity"])
            if isinstance(digest, BenchError):
                out.append(("task.data_hash", f"cannot prepare the task to check it: {digest}"))
            elif digest != task["data_hash"]:
                out.append(("task.data_hash", f"differs from the prepared task's ({digest})"))
        blob = {"name": method["name"], "version": method["version"], **method["config"]}
        if _sha(blob) != method["config_hash"]:
            out.append(("method.config_hash", "is not the sha256 of name, version and config"))
        if _sha(bb["config"]) != bb["config_hash"]:
            out.append(("backbone.config_hash", "is not the sha256 of backbone.config"))
        try:
            datetime.fromisoformat(rec["timestamp"])
        except ValueError:
            out.append(("timestamp", "not an ISO 8601 time"))
        return out

    def _metrics(self, metrics: dict) -> list[tuple[str, str]]:
        out = []
        for name, stat in metrics.items():
            f = f"metrics.{name}"
            base, _, k = name.partition("@")
            if base not in METRICS or (k and not (k.isdigit() and int(k) > 0)):
                out.append((f, "unknown metric"))
            if not isinstance(stat, dict):
                out.append((f, "must be an object with value, ci_low, ci_high, n"))
                continue
            bad = [s for s, kind in STAT_FIELDS.items() if not _is(stat.get(s), kind)]
            out += [(f"{f}.{s}", f"missing or not a {STAT_FIELDS[s]}") for s in bad]
            if bad:
                continue
            v, lo, hi = stat["value"], stat["ci_low"], stat["ci_high"]
            low, high = _range(base)
            if math.isinf(v) or (not math.isnan(v) and not low <= v <= high):
                out.append((f"{f}.value", f"{v} outside [{low}, {high}]"))
            if all(map(math.isfinite, (v, lo, hi))) and not lo - 1e-12 <= v <= hi + 1e-12:
                out.append((f"{f}.value", f"{v} outside its interval [{lo}, {hi}]"))
            if stat["n"] < 0:
                out.append((f"{f}.n", "negative"))
        return out + _headline(metrics)


def _headline(metrics: dict) -> list[tuple[str, str]]:
    """erasure_score = harmonic(forgetting_part, utility_part); the parts against fe@10,
    fe_latent@10 and retained_ndcg_ratio@10 where the record has them."""

    def val(name: str) -> float | None:
        s = metrics.get(name)
        return s["value"] if isinstance(s, dict) and _is(s.get("value"), NUM) else None

    f, u, e = (val(n) for n in HEADLINE_PARTS)
    if f is None or u is None or e is None:
        return [
            (f"metrics.{n}", "required metric missing")
            for n in HEADLINE_PARTS
            if val(n) is None
        ]
    fe, fl, nr = val("fe@10"), val("fe_latent@10"), val("retained_ndcg_ratio@10")
    checks = [("erasure_score", e, harmonic(f, u), "harmonic mean of its parts")]
    if fe is not None and fl is not None:
        checks.append(("forgetting_part", f, min(fe, fl), "min(fe@10, fe_latent@10)"))
    if nr is not None:
        checks.append(("utility_part", u, min(1.0, nr), "min(1, retained_ndcg_ratio@10)"))
    return [
        (f"metrics.{name}.value", f"{have} but {how} is {want}")
        for name, have, want, how in checks
        if not _close(float(have), float(want), HEADLINE_TOL)
    ]


def _evidence(rec: dict, ev: Path) -> list[tuple[str, str]]:
    if not ev.exists():
        return [("evidence", f"evidence file {ev.name} missing")]
    try:
        df = pd.read_parquet(ev)
    except Exception as exc:  # any unreadable parquet is a problem, not a crash
        return [("evidence", f"unreadable evidence file {ev.name}: {exc}")]
    metrics = rec["metrics"]
    ks = {int(n.partition("@")[2]) for n in metrics if n.partition("@")[2].isdigit()}
    try:
        bad = evidence_problems(df)
        recomputed = {} if bad else recompute_metrics(df, ks)
    except (ValueError, TypeError, KeyError) as exc:  # columns of the wrong kind
        bad = [("", f"malformed evidence file {ev.name}: {exc}")]
    if bad:
        return [(f"evidence.{c}" if c else "evidence", m) for c, m in bad]
    out = []
    for name, value in recomputed.items():
        stat = metrics.get(name)
        if isinstance(stat, dict) and _is(stat.get("value"), NUM):
            if not _close(float(stat["value"]), value, EVIDENCE_TOL):
                out.append((f"metrics.{name}.value", f"{stat['value']} but evidence gives {value}"))
    return out


def validate(path: str | Path, task_files: Iterable[str | Path] = ()) -> list[Problem]:
    """Every problem of a submission (a results folder or one result JSON); [] when clean.
    `task_files`: task .toml files that count as known besides the standard suite."""
    root = Path(path)
    if not root.exists():
        raise BenchError(f"no such file or folder: {root}")
    files = [root] if root.is_file() else result_files(root)
    if not files:
        return [Problem(str(root), "", "no result files (<task>/<method>/seed<N>.json)")]
    checker = Validator(task_files)
    problems: list[Problem] = []
    seeds: dict[tuple[str, str], dict[int, Path]] = defaultdict(dict)
    for f in files:
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            problems.append(Problem(str(f), "", f"not valid JSON: {exc}"))
            continue
        bad = checker.schema(rec)
        problems += [Problem(str(f), fld, msg) for fld, msg in bad]
        if bad:
            continue  # the other checks need a well-formed record
        found = checker.content(rec) + _evidence(rec, evidence_path(f))
        problems += [Problem(str(f), fld, msg) for fld, msg in found]
        task, method, seed = rec["task"], rec["method"]["name"], rec["seed"]
        if root.is_dir():
            want = Path(task["name"], method, f"seed{seed}.json")
            if f.resolve().parts[-3:] != want.parts:
                problems.append(Problem(str(f), "", f"misplaced: expected .../{want}"))
        key = (task["identity"], method)
        if seed in seeds[key]:
            problems.append(Problem(str(f), "seed", f"duplicate of {seeds[key][seed]}"))
        seeds[key][seed] = f
    return problems + _seed_problems(seeds)


def _seed_problems(seeds: dict[tuple[str, str], dict[int, Path]]) -> list[Problem]:
    everything = set().union(*(s.keys() for s in seeds.values())) if seeds else set()
    out = []
    for (task, method), have in sorted(seeds.items()):
        missing = sorted(everything - have.keys())
        if missing:
            folder = str(next(iter(have.values())).parent)
            msg = f"{task} {method}: missing seeds {missing} (submission has {sorted(everything)})"
            out.append(Problem(folder, "seed", msg))
    return out
