"""Validate a submission — a results folder or one result JSON — without executing anything from
it (DESIGN §6). Protocol 2.1, on top of the harness's own modules (no torch, no metric formula of
its own):

- the record against the one schema module (`benchmark.results.record`): protocol 1.x and 2.0
  files are refused;
- task identity and data hash (the task prepared here), method and backbone config hashes;
- metric names known to the registry (`benchmark.metrics.registry.METRICS`), values in range and
  inside their own interval;
- the evidence file: named by the record, beside it, its sha256 and row count as recorded, its
  columns, pools and ranks consistent (`rank` against the served `topk`, latent and relearned ranks
  on every forget-set row); then every metric computable from the evidence is recomputed with the
  harness's functions (`compute_all`) and must equal the recorded value — the headline and its
  parts included;
- the evidence against the prepared task: the exact row set (every test target in its pool, in
  order, then the forget set), targets, candidate counts, served item ids in the catalogue, the
  exposure bits against the served lists and the task's forget items, and the latent sample
  against its seeded draw;
- the retrain row is the reference (scored against itself), no other row is;
- no result declares itself verified (the board's signed verification ledger alone does), and a
  ledger entry that gives no ✓ is reported: unsigned, signed by a key the viewer does not trust,
  a signature that does not verify, a result changed since; a ledger below the root;
- every recorded rank lies in [0, catalogue); a symbolic link in the folder is refused;
- across a folder: file placement, duplicate and missing seeds, and one original model and one
  oracle per (task, seed) — the same checkpoints and the same original and oracle evidence columns
  in every method's file.

What stays self-reported: the method's own served lists (which items it served, hence its ranks),
its latent and relearned ranks, the original model's and the oracle's ranks (checked for agreement
across a submission's cells, not re-evaluated), and the model-level measurements (geometry, code
purity, cost). A forger who edits only those and recomputes the JSON passes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import __version__
from benchmark.metrics.evidence import (
    COLUMNS,
    FORGET_SET_ONLY,
    POOLS,
    RANKS,
    Evidence,
    evidence_path,
    forget_slots,
    latent_rows,
    read_evidence,
    slot_bits,
    target_ranks,
)
from benchmark.metrics.protocol import (
    ORACLE,
    SPLITS,
    ProtocolError,
    evaluation_problems,
    protocol_config,
)
from benchmark.metrics.registry import (
    HEADLINE_K,
    METRICS,
    compute_all,
    evidence_metric_names,
    metric_base,
    parse_metric,
    reference_columns,
)
from benchmark.metrics.stat import MetricStat, agrees
from benchmark.results.artifacts import artifacts_dir, check_files
from benchmark.results.ledger import (
    LEDGER_NAME,
    VERIFIED,
    entry_status,
    ledger_path,
    read_ledger,
    stray_ledgers,
)
from benchmark.results.record import (
    MAX_RESULT_BYTES,
    NUM,
    ResultRecord,
    is_kind,
    result_files,
    schema_problems,
    symlinks_in,
)
from benchmark.util.hashing import bytes_digest
from leaderboard.sequence_checks import block_problems, chain_problems
from tasks.errors import BenchError
from tasks.untrusted import read_json

# (result record, prepared task) -> the reference columns recomputed (`benchmark.app.verify`)
ReferenceFrame = Callable[[ResultRecord, Any], pd.DataFrame]

REFERENCE_METHOD = ORACLE
# metric ranges beyond the default [0, 1] (shares, recalls, NDCGs, the headline and its parts)
SIGNED = {"ce_excess", "relearn_excess", "retain_geometry_spearman"}  # [-1, 1]
NON_NEGATIVE = {"unlearn_seconds", "peak_memory_mib", "speedup_over_retrain"}  # [0, inf)
# metrics every result must give a finite value (NaN elsewhere: undefined)
FINITE_METRICS = {"erasure_score", "forgetting_part", "utility_part"}
# a ratio of two purity excesses (each a difference of mean cosines): any sign
UNBOUNDED = {"code_purity_ratio"}
# evidence columns that describe the examples, the original model and the oracle, not the method:
# one original model and one oracle per (task, seed), so every method's file of that seed holds the
# same ones (derived from the columns the registered metrics read)
SHARED_COLUMNS = reference_columns()
ONE_ORACLE = "a task and seed have one set of examples, one original model and one oracle"
# the reference row is scored against itself: its own columns are the oracle's
SELF_COLUMNS = {
    "rank": "oracle_rank", "forget_bits": "oracle_forget_bits",
    "latent_rank": "oracle_latent_rank", "relearn_rank": "oracle_relearn_rank",
}  # fmt: skip


@dataclass(frozen=True)
class Problem:
    file: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field or '-'}: {self.message}"


def metric_range(name: str) -> tuple[float, float]:
    """The closed interval a metric's value must lie in (NaN is allowed: undefined)."""
    base = metric_base(name)
    if base in SIGNED:
        return -1.0, 1.0
    if base in UNBOUNDED:
        return -math.inf, math.inf
    if base.endswith("_mean_rank"):
        return 1.0, math.inf
    if base.endswith("_ratio") or base in NON_NEGATIVE:
        return 0.0, math.inf
    return 0.0, 1.0


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _known(name: str) -> bool:
    base, k = parse_metric(name)
    if base not in METRICS:
        return False
    return (k is not None) if METRICS[base].per_k else name == base


def record_ks(metrics: dict) -> set[int]:
    """The K values a record reports (from its known per-K metric names), with the headline's."""
    ks = {HEADLINE_K}
    for name in metrics:
        base, k = parse_metric(name)
        if k is not None and base in METRICS and METRICS[base].per_k:  # a known per-K name
            ks.add(k)
    return ks


# ---- one record ---------------------------------------------------------------------------------


class Validator:
    """Checks result records; prepares each task once, lazily, for its data hash."""

    def __init__(self, task_files: Iterable[str | Path] = ()) -> None:
        from tasks import get_task, standard_tasks
        from tasks.sequence import is_sequence_file, load_sequence_file, standard_sequences

        self.specs = {s.identity: s for s in standard_tasks().values()}
        self.sequences = {s.identity: s for s in standard_sequences().values()}
        for f in task_files:
            if is_sequence_file(f):
                seq = load_sequence_file(f)
                self.sequences[seq.identity] = seq
            else:
                spec = get_task(str(f))
                self.specs[spec.identity] = spec
        for seq in self.sequences.values():  # a sequence's steps are tasks of their own
            self.specs.update({s.identity: s for s in seq.tasks()})
        self._tasks: dict[str, Any] = {}

    def task(self, identity: str):
        """The prepared task (or the BenchError preparing it raised), once per identity."""
        if identity not in self._tasks:
            from tasks import prepare_task

            try:
                self._tasks[identity] = prepare_task(self.specs[identity])
            except (BenchError, OSError) as exc:
                self._tasks[identity] = BenchError(str(exc))
        return self._tasks[identity]

    def data_hash(self, identity: str) -> str | BenchError:
        task = self.task(identity)
        return task if isinstance(task, BenchError) else task.content_hash

    def task_problems(self, rec: ResultRecord, frame: pd.DataFrame | None) -> list[tuple[str, str]]:
        """The evidence against the prepared task, when the record's data hash is the task's."""
        identity = rec.task.identity
        if frame is None or identity not in self.specs:
            return []
        task = self.task(identity)
        if isinstance(task, BenchError) or task.content_hash != rec.task.data_hash:
            return []
        return evidence_vs_task(frame, task)

    def protocol_problems(self, rec: ResultRecord) -> list[tuple[str, str]]:
        """The record's `evaluation` block against its task's protocol at the record's seed (a
        beam of 1 or a relearning rate of 100 is another benchmark, not a submission to this
        one)."""
        spec = self.specs.get(rec.task.identity)
        if spec is None:
            return []
        split = rec.evaluation.get("split") if isinstance(rec.evaluation, dict) else None
        try:
            want = protocol_config(spec.evaluation, rec.seed, split if split in SPLITS else "test")
        except ProtocolError as exc:
            return [("evaluation", f"the task's [evaluation] table: {exc}")]
        return [("evaluation", p) for p in evaluation_problems(rec.evaluation, want)]

    def identity(self, rec: ResultRecord) -> list[tuple[str, str]]:
        """Task identity and data hash, config hashes, timestamp."""
        task, method, bb = rec.task, rec.method, rec.backbone
        out = []
        if task.identity != f"{task.name}@{task.version}":
            out.append(("task.identity", "is not task.name@task.version"))
        if task.identity not in self.specs:
            out.append(("task.identity", f"unknown task {task.identity!r}"))
        else:
            digest = self.data_hash(task.identity)
            if isinstance(digest, BenchError):
                out.append(("task.data_hash", f"cannot prepare the task to check it: {digest}"))
            elif digest != task.data_hash:
                out.append(("task.data_hash", f"differs from the prepared task's ({digest})"))
        blob = {"name": method.name, "version": method.version, **method.config}
        if _sha(blob) != method.config_hash:
            out.append(("method.config_hash", "is not the sha256 of name, version and config"))
        if _sha(bb.config) != bb.config_hash:
            out.append(("backbone.config_hash", "is not the sha256 of backbone.config"))
        try:
            datetime.fromisoformat(rec.timestamp)
        except ValueError:
            out.append(("timestamp", "not an ISO 8601 time"))
        return out


def metric_problems(metrics: dict[str, MetricStat]) -> list[tuple[str, str]]:
    """Names known to the registry; each value in range and in its interval (the record's schema
    checked each statistic's form)."""
    out = []
    for name, stat in metrics.items():
        f = f"metrics.{name}"
        if not _known(name):
            out.append((f, "unknown metric (not in benchmark.metrics.registry.METRICS)"))
            continue
        v, lo, hi = stat.value, stat.ci_low, stat.ci_high
        low, high = metric_range(name)
        if name in FINITE_METRICS and not math.isfinite(v):
            out.append((f"{f}.value", f"{v}: must be a finite number"))
        elif math.isinf(lo) or math.isinf(hi):
            out.append((f, f"interval [{lo}, {hi}] is not finite (NaN: no interval)"))
        elif math.isinf(v) or (not math.isnan(v) and not low <= v <= high):
            out.append((f"{f}.value", f"{v} outside [{low}, {high}]"))
        elif all(map(math.isfinite, (v, lo, hi))) and not lo - 1e-12 <= v <= hi + 1e-12:
            out.append((f"{f}.value", f"{v} outside its interval [{lo}, {hi}]"))
        if stat.n < 0:
            out.append((f"{f}.n", "negative"))
    return out


def claim_problems(rec: ResultRecord) -> list[tuple[str, str]]:
    """A result cannot vouch for itself: a `verification` block is a claim only the board's
    ledger can make (`benchmark.results.ledger`); cost numbers are finite."""
    out = []
    if "verification" in rec.extra:
        out.append(
            (
                "verification",
                "a result cannot declare itself verified: the ✓ comes "
                f"only from the board's {LEDGER_NAME}, written by `tracer-bench verify`",
            )
        )
    for name, value in rec.cost.items():
        if is_kind(value, NUM) and not math.isfinite(value):
            out.append((f"cost.{name}", f"{value}: must be a finite number"))
    return out


def ledger_problems(root: Path, trusted: Mapping) -> list[Problem]:
    """What keeps a ledger entry from giving its result a ✓ (the result is then shown
    self-reported): unsigned, signed by a key not trusted here, a signature that does not verify,
    a result or evidence changed since; an entry that names no result here; a malformed ledger;
    a ledger anywhere but the root (none counts, wherever it lies)."""
    out = [
        Problem(
            str(p),
            "",
            f"a {LEDGER_NAME} counts only at the root of the board's folder, "
            "written by `tracer-bench verify`: remove it",
        )
        for p in stray_ledgers(root)
    ]
    try:
        ledger = read_ledger(root)
    except BenchError as exc:
        return out + [Problem(str(ledger_path(root)), "", str(exc))]
    for name, entry in ledger.items():
        f = root / name
        if not f.is_file():
            out.append(Problem(str(ledger_path(root)), name, "names a result that is not here"))
            continue
        status = entry_status(entry, f, trusted)
        if status != VERIFIED:
            out.append(Problem(str(ledger_path(root)), name, f"{status}: shown self-reported"))
    return out


def reference_problems(rec: ResultRecord) -> list[tuple[str, str]]:
    """The retrain row is the reference (scored against itself); no other row is."""
    want = rec.method.name == REFERENCE_METHOD
    if rec.reference != want:
        who = f"the {REFERENCE_METHOD} row" if want else f"only the {REFERENCE_METHOD} row"
        return [("reference", f"must be {str(want).lower()}: {who} is the reference")]
    return []


# ---- the evidence -------------------------------------------------------------------------------


def _first(rows: np.ndarray) -> str:
    idx = np.flatnonzero(rows)
    return f"{len(idx)} row(s), first at row {idx[0]}"


def _topk_matrix(topk: pd.Series) -> np.ndarray:
    lengths = {len(x) for x in topk}
    if len(lengths) > 1:
        raise ValueError(f"topk lists of unequal lengths {sorted(lengths)}")
    if not len(topk):
        return np.zeros((0, 0), np.int64)
    return np.stack([np.asarray(x, dtype=np.int64) for x in topk])


def frame_problems(
    df: pd.DataFrame, ks: set[int], reference: bool
) -> tuple[list[tuple[str, str]], Evidence | None]:
    """(problems as (column, message), the evidence when metrics can be computed from it)."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        return [("", f"missing columns {missing}")], None
    pools = set(df["pool"].astype(str)) - set(POOLS)
    if pools:
        return [("pool", f"unknown pools {sorted(pools)} (known: {list(POOLS)})")], None
    try:
        ev = Evidence.from_frame(df)
        topk = _topk_matrix(df["topk"])
    except (ValueError, TypeError, OverflowError) as exc:
        return [("", f"malformed evidence: {exc}")], None
    out = []
    if topk.shape[1] < max(ks):
        out.append(("topk", f"lists of {topk.shape[1]} items, but the record reports "
                    f"@{max(ks)}"))  # fmt: skip
    bad = ev["rank"] != target_ranks(topk, ev["target"])
    if bad.any():
        out.append(("rank", f"disagrees with the target's place in topk on {_first(bad)}"))
    fs = ev.mask("forget_set")
    # the latent sample: forget-set rows with latent ranks, the same rows in all three columns
    sample = fs & ~np.isnan(ev["latent_rank"])
    if fs.any() and not sample.any():
        out.append(("latent_rank", "no forget-set row carries latent ranks"))
    for c in ("rank", "original_rank", "oracle_rank", "banned_rank", *FORGET_SET_ONLY):
        rows = sample if "latent" in c else fs
        r = ev[c] if c not in FORGET_SET_ONLY else np.where(rows, ev[c], 0.0)
        if np.isnan(r).any():
            where = " (forget-set rows)" if c in FORGET_SET_ONLY else ""
            where = " (latent-sample rows)" if "latent" in c else where
            out.append((c, f"missing (NaN){where} on {_first(np.isnan(r))}"))
        elif "latent" in c and not np.array_equal(np.isnan(ev[c]) & fs, fs & ~sample):
            out.append((c, "its latent sample differs from latent_rank's"))
        elif ((r < 0) | (r != np.floor(r))).any():  # floor(inf) = inf: absent is fine
            out.append((c, f"not a 0-based rank on {_first((r < 0) | (r != np.floor(r)))}"))
    if (ev["n_candidates"] < 1).any():
        out.append(("n_candidates", f"below 1 on {_first(ev['n_candidates'] < 1)}"))
    for c in ("forget_bits", "original_forget_bits", "oracle_forget_bits"):
        if (ev[c] < 0).any():
            out.append((c, f"negative bit mask on {_first(ev[c] < 0)}"))
    if reference:  # scored against itself: its own columns are the oracle's
        for own, oracle in SELF_COLUMNS.items():
            a, b = ev[own], ev[oracle]
            rows = fs if own in FORGET_SET_ONLY else np.ones(len(a), bool)
            rows = rows & ~np.isnan(a) if "latent" in own else rows
            if not np.array_equal(a[rows], b[rows]):
                out.append((own, f"differs from {oracle} in the reference row's evidence"))
    return out, ev


def evidence_problems(
    rec: ResultRecord, json_path: Path
) -> tuple[list[tuple[str, str]], pd.DataFrame | None]:
    """(problems as (field, message), the evidence frame when it could be read)."""
    want = evidence_path(json_path)
    meta = rec.evidence
    if meta.file != want.name:
        msg = f"{meta.file!r}: must be {want.name!r}, beside the JSON"
        return [("evidence.file", msg)], None
    if not want.is_file():
        return [("evidence.file", f"evidence file {want.name} missing")], None
    out = []
    data = want.read_bytes()
    if bytes_digest(data) != meta.sha256:
        out.append(("evidence.sha256", f"is not the sha256 of {want.name} (changed since written)"))
    try:
        df = read_evidence(want)
    except Exception as exc:  # any unreadable parquet is a problem, not a crash
        return out + [("evidence.file", f"unreadable evidence file {want.name}: {exc}")], None
    if len(df) != meta.rows:
        out.append(("evidence.rows", f"{meta.rows} but {want.name} has {len(df)} rows"))
    metrics = rec.metrics
    ks = record_ks(metrics)
    bad, ev = frame_problems(df, ks, rec.reference is True)
    out += [(f"evidence.{c}" if c else "evidence", m) for c, m in bad]
    if ev is None:
        return out, None
    return out + recompute_problems(metrics, ev, ks), df


def recompute_problems(
    metrics: dict[str, MetricStat], ev: Evidence, ks: set[int]
) -> list[tuple[str, str]]:
    """Every metric computable from the evidence (at the record's K values) is recomputed with the
    harness's own functions and must be in the record with the same value."""
    names = evidence_metric_names(ks)
    try:
        with np.errstate(all="ignore"):
            values = compute_all(ev, names)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        return [("evidence", f"metrics cannot be computed from the evidence: {exc}")]
    out = []
    for name in names:
        stat = metrics.get(name)
        if stat is None:
            out.append((f"metrics.{name}", "missing (required: computable from the evidence)"))
        else:
            have, want = stat.value, values[name]
            if not agrees(have, want):
                how = METRICS[metric_base(name)].description
                out.append((f"metrics.{name}.value",
                            f"{have} but the evidence gives {want} ({how})"))  # fmt: skip
    return out


def evidence_vs_task(df: pd.DataFrame, task) -> list[tuple[str, str]]:
    """(field, message) where the evidence is not the task's: the exact rows (pools, positions,
    targets, in order), candidate counts, served ids, exposure bits and the latent sample."""
    in_f = task.forget_mask[task.test_items]
    pools = np.where(in_f, "forget_test", "retain_test")
    fs_pos = task.train_pos[task.forget_set]
    want_pool = np.concatenate([pools, np.full(len(fs_pos), "forget_set")])
    want_pos = np.concatenate([task.test_pos, fs_pos])
    pool, pos = df["pool"].astype(str).to_numpy(), df["position"].to_numpy()
    if len(df) != len(want_pos) or not (np.array_equal(pool, want_pool)
                                         and np.array_equal(pos, want_pos)):  # fmt: skip
        return [("evidence.position", f"the rows are not the task's evaluation examples: "
                 f"{len(df)} rows, the task has {len(want_pos)} ({len(task.test_pos)} test targets "
                 f"and {len(fs_pos)} forget-set examples, in order)")]  # fmt: skip
    out = rank_range_problems(df, task.n_items)
    if not np.array_equal(df["target"].to_numpy(), task.seq_items[want_pos]):
        out.append(("evidence.target", "differs from the task's item at the example's position"))
    if not np.array_equal(df["n_candidates"].to_numpy(), task.n_candidates(want_pos)):
        out.append(("evidence.n_candidates", "is not the catalogue minus the user's seen items"))
    topk = _topk_matrix(df["topk"])
    if ((topk < -1) | (topk >= task.n_items)).any():
        out.append(("evidence.topk", f"item ids outside the catalogue (0..{task.n_items - 1})"))
    else:
        bits = slot_bits(forget_slots(topk, task.forget_mask))
        bad = df["forget_bits"].to_numpy() != bits
        if bad.any():
            out.append(("evidence.forget_bits", f"not the forget items in topk on {_first(bad)}"))
    lat = np.flatnonzero(~np.isnan(df["latent_rank"].to_numpy()[len(task.test_pos) :]))
    draw = latent_rows(len(fs_pos), len(lat), task.spec.split.seed)
    if not np.array_equal(lat, draw):
        out.append(("evidence.latent_rank", f"the latent sample ({len(lat)} forget-set rows) is "
                    "not the seeded draw of that size"))  # fmt: skip
    return out


def rank_range_problems(df: pd.DataFrame, n_items: int) -> list[tuple[str, str]]:
    """Every recorded rank lies in [0, catalogue): a rank counts the items above the target, so
    it cannot reach the catalogue's size (inf = not served, NaN = not measured)."""
    out = []
    for c in RANKS:
        r = df[c].to_numpy(dtype=np.float64)
        bad = np.isfinite(r) & ((r < 0) | (r >= n_items))
        if bad.any():
            out.append((f"evidence.{c}", f"outside [0, {n_items}) (the catalogue) on "
                        f"{_first(bad)}"))  # fmt: skip
    return out


def artifact_problems(rec: ResultRecord, json_path: Path) -> list[tuple[str, str]]:
    """A record that names artifacts: the folder beside it, every file's size and hash against
    the manifest, and the manifest's hash against the record (no file is loaded)."""
    meta = rec.artifacts
    if meta is None:
        return []
    if not isinstance(meta, dict) or not all(isinstance(meta.get(k), str)
                                             for k in ("folder", "manifest_sha256")):  # fmt: skip
        return [("artifacts", "must be an object with strings folder and manifest_sha256")]
    folder = artifacts_dir(json_path)
    if meta["folder"] != folder.name or not folder.is_dir():
        return [("artifacts.folder", f"{meta['folder']!r}: must be the folder {folder.name}, "
                 "beside the JSON")]  # fmt: skip
    try:
        digest = check_files(folder)
    except BenchError as exc:
        return [("artifacts", str(exc))]
    if digest != meta["manifest_sha256"]:
        return [("artifacts.manifest_sha256", "is not the sha256 of the artifacts' manifest")]
    return []


# ---- a submission -------------------------------------------------------------------------------


@dataclass
class _Seen:
    file: Path
    rec: ResultRecord
    evidence: pd.DataFrame | None


def validate(
    path: str | Path, task_files: Iterable[str | Path] = (),
    recompute_reference: ReferenceFrame | None = None, trusted: Mapping | None = None,
) -> list[Problem]:  # fmt: skip
    """Every problem of a submission (a results folder or one result JSON); [] when clean.
    `task_files`: task .toml files that count as known besides the standard suite.
    `recompute_reference`: a function (record, prepared task) -> the original model's and the
    oracle's evidence columns recomputed with this machine's models (the application passes
    `benchmark.app.verify.reference_frame`, which needs torch); they must equal the recorded
    ones. `trusted`: the public keys whose ledger signatures this viewer accepts (none: every
    ledger entry is a problem, as no ✓ can be shown)."""
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise BenchError(f"no such file or folder: {root}")
    links = symlinks_in(root) if root.is_dir() or root.is_symlink() else []
    if links:
        return [Problem(str(p), "", "a symbolic link in a results folder (refused: every file "
                        "must lie in the folder itself)") for p in links]  # fmt: skip
    files = [root] if root.is_file() else result_files(root)
    if not files:
        return [Problem(str(root), "", "no result files (<task>/<method>/seed<N>.json)")]
    checker = Validator(task_files)
    problems: list[Problem] = []
    seeds: dict[tuple[str, str], dict[int, Path]] = defaultdict(dict)
    cells: dict[tuple[str, int], list[_Seen]] = defaultdict(list)
    steps: list[tuple[str, ResultRecord]] = []
    for f in files:
        try:
            raw = read_json(f, MAX_RESULT_BYTES, allow_nan=True)
        except BenchError as exc:
            problems.append(Problem(str(f), "", str(exc).removeprefix(f"{f}: ")))
            continue
        bad = schema_problems(raw)
        problems += [Problem(str(f), fld, msg) for fld, msg in bad]
        if bad:
            continue  # the other checks need a well-formed record
        rec = ResultRecord.from_dict(raw, str(f))
        ev_bad, frame = evidence_problems(rec, f)
        found = (
            checker.identity(rec) + checker.protocol_problems(rec)
            + metric_problems(rec.metrics) + claim_problems(rec)
            + reference_problems(rec)
            + ev_bad + checker.task_problems(rec, frame) + artifact_problems(rec, f)
            + block_problems(rec, frame, checker.sequences, checker.task)
        )  # fmt: skip
        steps.append((str(f), rec))
        problems += [Problem(str(f), fld, msg) for fld, msg in found]
        if root.is_dir():
            want = rec.path_under(Path())
            if f.resolve().parts[-3:] != want.parts:
                problems.append(Problem(str(f), "", f"misplaced: expected .../{want}"))
        key, seed = (rec.task.identity, rec.method.name), rec.seed
        if seed in seeds[key]:
            problems.append(Problem(str(f), "seed", f"duplicate of {seeds[key][seed]}"))
        seeds[key][seed] = f
        cells[(rec.task.identity, seed)].append(_Seen(f, rec, frame))
    problems += _seed_problems(seeds) + _shared_problems(cells)
    problems += [Problem(f, fld, msg) for f, fld, msg in chain_problems(steps)]
    if root.is_dir():
        problems += ledger_problems(root, trusted or {})
    if recompute_reference is not None:
        problems += _recomputed_problems(cells, checker, recompute_reference)
    return problems


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


def _shared_problems(cells: dict[tuple[str, int], list[_Seen]]) -> list[Problem]:
    """One original model and one oracle per (task, seed): every method's record of that seed
    names the same checkpoints and its evidence holds the same examples and the same original and
    oracle columns. Each record is compared with the reference row's (else the first file's)."""
    out = []
    for (_task, _seed), seen in sorted(cells.items()):
        base = next((s for s in seen if s.rec.method.name == REFERENCE_METHOD), seen[0])
        for s in seen:
            if s is base:
                continue
            for fld in ("backbone.checkpoint_sha256", "oracle.checkpoint_sha256"):
                part, _, key = fld.partition(".")
                if getattr(getattr(s.rec, part), key) != getattr(getattr(base.rec, part), key):
                    msg = f"differs from {base.file}'s ({ONE_ORACLE})"
                    out.append(Problem(str(s.file), fld, msg))
            a, b = s.evidence, base.evidence
            if a is None or b is None or any(c not in a or c not in b for c in SHARED_COLUMNS):
                continue
            if len(a) != len(b):
                msg = f"{len(a)} rows but {base.file}'s evidence has {len(b)} ({ONE_ORACLE})"
                out.append(Problem(str(s.file), "evidence", msg))
                continue
            differ = [c for c in SHARED_COLUMNS if not _same(a[c], b[c])]
            if differ:
                msg = f"columns {differ} differ from {base.file}'s ({ONE_ORACLE})"
                out.append(Problem(str(s.file), "evidence", msg))
    return out


def _recomputed_problems(
    cells: dict[tuple[str, int], list[_Seen]], checker: Validator, reference_frame: ReferenceFrame
) -> list[Problem]:
    """Each (task, seed)'s original and oracle columns against this machine's recomputation."""
    out = []
    for (identity, seed), seen in sorted(cells.items()):
        have = [(s, s.evidence) for s in seen if s.evidence is not None]
        task = checker.task(identity) if identity in checker.specs else None
        if not have or task is None or isinstance(task, BenchError):
            continue  # already reported: unknown task, unpreparable task, or no evidence
        first = have[0][0]
        try:
            want = reference_frame(first.rec, task)
        except BenchError as exc:
            out.append(Problem(str(first.file), "reference", f"not recomputed: {exc}"))
            continue
        for s, a in have:
            if len(a) != len(want) or any(c not in a for c in SHARED_COLUMNS):
                continue  # already reported against the task's row set
            differ = [c for c in SHARED_COLUMNS if not _same(a[c], want[c])]
            if differ:
                msg = f"columns {differ} differ from this machine's recomputation (seed {seed})"
                if s.rec.harness_version != __version__:
                    msg += (f"; recorded by harness {s.rec.harness_version}, recomputed "
                            f"by {__version__}")  # fmt: skip
                out.append(Problem(str(s.file), "evidence", msg))
    return out


def _same(a: pd.Series, b: pd.Series) -> bool:
    x, y = a.to_numpy(), b.to_numpy()
    if x.dtype.kind == "f" or y.dtype.kind == "f":
        try:
            x, y = x.astype(np.float64), y.astype(np.float64)
        except (ValueError, TypeError):
            return False
        return bool(np.array_equal(x, y, equal_nan=True))
    return bool(np.array_equal(x.astype(str), y.astype(str)))
