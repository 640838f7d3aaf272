"""Load a results folder and aggregate it into a leaderboard table (DESIGN §5, §6).

A results folder holds `<task>/<method>/seed<N>.json` (schema version 3, `benchmark.results.record`)
with `seed<N>.evidence.parquet` beside each; `seed<N>.failed.json` files are failed runs (skipped,
counted) and anything else is ignored. Protocol 1.x and 2.0 files (schema versions 1, 2) are
refused.

Ranks (DESIGN §5): within a task group (identity, data hash, backbone) a row's rank is 1 + the
number of rows whose erasure score is significantly better: the 95 % interval of the paired
difference over the seeds the two rows share, from one joint (seed, example) bootstrap of the
evidence (`benchmark.metrics.bootstrap.seed_resampled_means`, the same draws as
`paired_differences` with the same seed). Rows that cannot be told apart share a rank. A pair
where either row has no evidence (or no seed in common) is compared by mean instead: the higher
mean counts as better (`rank_basis` is then "mean", and a note says so).

The `retrain` row (the oracle, `reference: true`) is never scored against itself: with >= 2 seeds
each seed is re-scored from its evidence against the next seed's oracle (cyclically) and shown as
the **noise ceiling**, ranked like the others; with one seed (or no evidence) it is shown
unranked as the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.metrics.bootstrap import N_BOOT, interval, seed_resampled_means
from benchmark.metrics.evidence import Evidence, read_evidence, same_examples, with_oracle_of
from benchmark.metrics.registry import COST_METRICS, HEADLINE, compute, metric_base, metric_k
from benchmark.results.ledger import is_verified, read_ledger
from benchmark.results.record import (
    RESULT_NAME,
    ResultRecord,
    ResultsError,
    failure_files,
    result_files,
)
from tasks.errors import BenchError

# a row of the leaderboard never mixes two values of these (DESIGN §6)
GROUP_KEYS = ["task_identity", "task_data_hash", "backbone_hash"]
ROW_KEYS = [*GROUP_KEYS, "method", "method_version", "config_hash"]
ID_COLUMNS = [*ROW_KEYS, "task_name", "seed", "harness_version", "reference", "verified",
              "board", "sequence", "step", "evidence", "path"]  # fmt: skip

# the columns of the leaderboard, headline first; "@10" metrics fall back to the largest K
COMPACT_METRICS = [  # what `run` prints, and `leaderboard --compact`
    "erasure_score", "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
    "retained_ndcg_banned_ratio@10", "retained_ndcg_ratio@10", "collateral_ndcg_ratio@10",
    "ce_excess@10",
    "latent_forget_mean_rank", "oracle_latent_forget_mean_rank", "relearn_excess@10",
    "unlearn_seconds", "speedup_over_retrain",
]  # fmt: skip
LEADERBOARD_METRICS = [
    "erasure_score", "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
    "latent_ks", "retained_ndcg_banned_ratio@10", "retained_ndcg_ratio@10",
    "retained_ndcg_oracle_ratio@10", "retained_recall@10",
    "retained_ndcg@10", "collateral_ndcg_ratio@10", "forget_set_recall@10",
    "forget_test_recall@10", "ce@10", "ce_excess@10", "latent_forget_recall@10",
    "latent_forget_mean_rank", "oracle_latent_forget_mean_rank", "relearn_forget_recall@10",
    "relearn_oracle_forget_recall@10", "relearn_excess@10", "retain_geometry_spearman",
    "code_purity_ratio", "unlearn_seconds", "peak_memory_mib", "speedup_over_retrain",
]  # fmt: skip
PREFERRED_K = 10
# metrics given a (seed, example) bootstrap interval (`<name>_lo`, `<name>_hi`): the headline and
# the two parts the trade-off plot draws
INTERVAL_METRICS = (HEADLINE, "forgetting_part", "utility_part")
ROLES = ("method", "noise ceiling", "reference")
STATS = ("mean", "std", "lo", "hi")


def _number(value: object, path: Path, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{path}: field '{field}' is not a number ({value!r})")
    return float(value)


def board_label(tuning: dict | None) -> str:
    """Which board a record belongs to: a method's defaults, or `tracer-bench tune`'s choice."""
    if not tuning:
        return "defaults: every method at its default configuration"
    if tuning.get("board") != "tuned":
        return f"trial {tuning.get('trial')} of a tune, on validation targets (not a board)"
    seeds = " ".join(str(s) for s in tuning.get("selection_seeds", []))
    return (f"tuned: {tuning.get('search')} search, {tuning.get('budget')} configurations per "
            f"method with hyper-parameters, chosen by the validation {tuning.get('selected_by')} "
            f"of seeds {seeds}")  # fmt: skip


def read_result(path: Path, verified: bool = False) -> dict:
    """One result file as a flat row: identity columns (with `reference`, `verified` as the
    caller found it in the board's ledger, and the path of its evidence file, "" when absent) plus
    one column per metric value. A file that is not a well-formed schema-3 record (a protocol
    1.x or 2.0 file included) is a ResultsError naming it."""
    rec = ResultRecord.read(path)
    evidence = Path(path).parent / Path(rec.evidence.file).name
    row: dict = {
        "task_identity": rec.task.identity,
        "task_name": rec.task.name,
        "task_data_hash": rec.task.data_hash,
        "backbone_hash": rec.backbone.config_hash,
        "method": rec.method.name,
        "method_version": rec.method.version,
        "config_hash": rec.method.config_hash,
        "seed": rec.seed,
        "harness_version": rec.harness_version,
        "reference": rec.reference,
        "verified": verified,  # never what the file says of itself (benchmark.results.ledger)
        "board": board_label(rec.tuning),
        # a sequential task's step: its sequence's identity and the step ("", 0 for a task)
        "sequence": str(rec.sequence.get("sequence", "")) if rec.sequence else "",
        "step": _step(rec.sequence),
        "evidence": str(evidence) if evidence.is_file() else "",
        "path": str(path),
    }
    match = RESULT_NAME.fullmatch(Path(path).name)
    if match and int(match.group(1)) != row["seed"]:
        raise ResultsError(
            f"{path}: field 'seed' is {row['seed']} but the file name says seed{match.group(1)}"
        )
    for name, stat in rec.metrics.items():
        if name in ID_COLUMNS:
            raise ResultsError(f"{path}: metric name '{name}' clashes with an identity column")
        row[name] = stat.value
    for name in COST_METRICS:  # cost metrics missing from `metrics` are taken from `cost`
        if name not in row and name in rec.cost:
            row[name] = _number(rec.cost[name], path, f"cost.{name}")
    return row


def _step(block: dict | None) -> int:
    step = block.get("step") if isinstance(block, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) else 0


def find_result_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(result files, failed-run files) under `folder`, sorted; other files are ignored."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultsError(f"results folder {folder} does not exist")
    if not folder.is_dir():
        raise ResultsError(f"results folder {folder} is not a folder")
    return result_files(folder), failure_files(folder)


def load_results(folder: str | Path, trusted: Mapping | None = None) -> pd.DataFrame:
    """One row per result file under `folder`: task identity and data hash, backbone config hash,
    method name / version / config hash, seed, `reference`, `verified` (an entry of `folder`'s
    verification ledger, signed by one of the `trusted` public keys, matches the file and its
    evidence; with no trusted key nothing is verified), `evidence` (its path, "" if absent),
    and one column per metric value (NaN if absent). `df.attrs` holds `folder`, `failed`
    (number of failed-run files skipped) and `failed_files`."""
    results, failed = find_result_files(folder)
    if not results:
        extra = f" ({len(failed)} failed runs only)" if failed else ""
        raise ResultsError(f"no result files (<task>/<method>/seed<N>.json) in {folder}{extra}")
    root = Path(folder)
    try:
        ledger = read_ledger(root)
    except BenchError as exc:
        raise ResultsError(str(exc)) from None
    rows = [read_result(p, is_verified(root, p, ledger, trusted or {})) for p in results]
    df = pd.DataFrame(rows)
    metric_cols = sorted(c for c in df.columns if c not in ID_COLUMNS)
    df = df[ID_COLUMNS + metric_cols]
    df[metric_cols] = df[metric_cols].astype(np.float64)
    df.attrs = {
        "folder": str(folder),
        "failed": len(failed),
        "failed_files": [str(p) for p in failed],
    }
    return df


def resolve_metric(requested: str, has_data: dict[str, bool]) -> str:
    """The column shown for `requested`: itself when it has data, else (for an `@K` metric) the
    same metric at the largest K that has data, else `requested` itself (a column of NaN)."""
    if has_data.get(requested) or metric_k(requested) is None:
        return requested
    base = metric_base(requested)
    ks = [
        k for name, ok in has_data.items()
        if ok and metric_base(name) == base and (k := metric_k(name)) is not None
    ]  # fmt: skip
    return f"{base}@{max(ks)}" if ks else requested


def _has_data(df: pd.DataFrame, suffix: str = "") -> dict[str, bool]:
    n = len(suffix)
    return {
        (c[:-n] if n else c): bool(df[c].notna().any())
        for c in df.columns
        if c.endswith(suffix) and c not in ID_COLUMNS
    }


def section_metrics(section: pd.DataFrame) -> list[str]:
    """The metric names a leaderboard section (one task group of `leaderboard_table`) shows."""
    has = _has_data(section, "_mean")
    return [resolve_metric(m, has) for m in LEADERBOARD_METRICS]


# ---- evidence, resampling and significance ------------------------------------------------------


def _load_evidence(paths: Sequence[str]) -> list[Evidence | None]:
    out: list[Evidence | None] = []
    for p in paths:
        try:
            out.append(Evidence.from_frame(read_evidence(Path(p))) if p else None)
        except (OSError, ValueError) as exc:
            raise ResultsError(f"{p}: cannot read evidence ({exc})") from None
    return out


def _significance(
    seeds: list[dict[int, Evidence] | None], means: list[float], n_boot: int, seed: int
) -> tuple[list[int | None], list[str], np.ndarray, tuple[int, int]]:
    """Ranks (None: undefined mean), rank bases, (rows, INTERVAL_METRICS, 2) seed intervals and
    (significantly separated pairs, pairs tested) of the ranked rows of one task group."""
    n = len(means)
    cache: dict[tuple[int, ...], tuple[list[int], np.ndarray]] = {}

    def boots(shared: tuple[int, ...]) -> tuple[list[int], np.ndarray]:
        if shared not in cache:
            held = [(i, ev) for i, ev in enumerate(seeds) if ev and set(shared) <= ev.keys()]
            members = [i for i, _ in held]
            evs = [[ev[s] for s in shared] for _, ev in held]
            cache[shared] = members, seed_resampled_means(evs, INTERVAL_METRICS, n_boot, seed)
        return cache[shared]

    intervals = np.full((n, len(INTERVAL_METRICS), 2), np.nan)
    for i, ev in enumerate(seeds):
        if ev:
            members, b = boots(tuple(sorted(ev)))
            for j in range(len(INTERVAL_METRICS)):
                intervals[i, j] = interval(b[:, members.index(i), j])
    beaten_by = [0] * n
    basis = ["paired"] * n
    separated = tested = 0
    ranked = [i for i in range(n) if np.isfinite(means[i])]
    for i, j in combinations(ranked, 2):
        si, sj = seeds[i], seeds[j]
        shared = tuple(sorted(si.keys() & sj.keys())) if si and sj else ()
        if shared:
            members, b = boots(shared)
            lo, hi = interval(b[:, members.index(j), 0] - b[:, members.index(i), 0])
            tested += 1
            better = 1 if lo > 0 else (-1 if hi < 0 else 0)  # 1: j beats i
            separated += better != 0
        else:
            basis[i] = basis[j] = "mean"
            d = round(means[j], 12) - round(means[i], 12)
            better = 1 if d > 0 else (-1 if d < 0 else 0)
        if better > 0:
            beaten_by[i] += 1
        elif better < 0:
            beaten_by[j] += 1
    ranks: list[int | None] = [None] * n
    for i in ranked:
        ranks[i] = 1 + beaten_by[i]
    return ranks, basis, intervals, (separated, tested)


def _noise_ceiling(runs: pd.DataFrame, evs: list[Evidence | None]) -> list[Evidence] | None:
    """The retrain row's evidence with each seed scored against the next seed's oracle, or None
    (one seed, or evidence missing or not comparable)."""
    present = [e for e in evs if e is not None]
    if len(runs) < 2 or len(present) < len(evs):
        return None
    order = np.argsort(runs["seed"].to_numpy(), kind="stable")
    following = {int(i): int(order[(k + 1) % len(order)]) for k, i in enumerate(order)}
    try:
        return [with_oracle_of(ev, present[following[i]]) for i, ev in enumerate(present)]
    except ValueError:
        return None


def _recomputed(runs: pd.DataFrame, evs: list[Evidence]) -> pd.DataFrame:
    """`runs` with every metric computable from evidence replaced by its value on `evs`."""
    runs = runs.copy()
    for col in [c for c in runs.columns if c not in ID_COLUMNS]:
        try:
            values = [compute(ev, col) for ev in evs]
        except (KeyError, ValueError):
            continue
        runs[col] = values
    return runs


def _group_rows(
    group: pd.DataFrame, n_boot: int, seed: int
) -> tuple[pd.DataFrame, tuple[int, int]]:
    group = group.dropna(axis=1, how="all")
    has = _has_data(group)
    shown = list(dict.fromkeys(resolve_metric(m, has) for m in LEADERBOARD_METRICS))
    rows, seed_evs = [], []
    first: dict[int, Evidence] = {}  # the examples of each seed (the first evidence read)
    for keys, runs in group.groupby(ROW_KEYS, sort=True):
        evs = _load_evidence(runs["evidence"].tolist())
        for s, ev in zip(runs["seed"], evs, strict=True):
            if ev is not None:
                first.setdefault(int(s), ev)
        comparable = all(
            ev is not None and same_examples(ev, first[int(s)])
            for s, ev in zip(runs["seed"], evs, strict=True)
        )
        role = "method"
        if bool(runs["reference"].any()):
            ceiling = _noise_ceiling(runs, evs) if comparable else None
            role = "reference" if ceiling is None else "noise ceiling"
            if ceiling is not None:
                evs, runs = list(ceiling), _recomputed(runs, ceiling)
        by_seed = dict(zip(runs["seed"].astype(int), evs, strict=True)) if comparable else None
        seed_evs.append(by_seed if role != "reference" else None)
        row = dict(zip(ROW_KEYS, keys, strict=True))
        row["role"] = role
        row["verified"] = bool(runs["verified"].all())  # every seed re-evaluated from artifacts
        row["n_seeds"] = len(runs)
        row["seeds"] = " ".join(str(s) for s in sorted(runs["seed"]))
        row["harness_versions"] = " ".join(sorted(set(runs["harness_version"])))
        row["board"] = " | ".join(sorted(set(runs["board"])))
        for name in shown:
            values = runs[name] if name in runs else pd.Series(np.nan, index=runs.index)
            row[f"{name}_mean"] = values.mean(skipna=False)
            row[f"{name}_std"] = values.std(ddof=1, skipna=False)
        rows.append(row)
    part = pd.DataFrame(rows)
    means = [
        m if r != "reference" else math.nan
        for m, r in zip(part[f"{HEADLINE}_mean"], part["role"], strict=True)
    ]  # fmt: skip
    ranks, basis, intervals, pairs = _significance(seed_evs, means, n_boot, seed)
    part.insert(len(ROW_KEYS), "rank", pd.array(ranks, dtype="Int64"))
    part.insert(len(ROW_KEYS) + 2, "rank_basis", [
        b if r is not None else "" for b, r in zip(basis, ranks, strict=True)
    ])  # fmt: skip
    for j, name in enumerate(INTERVAL_METRICS):
        part[f"{name}_lo"], part[f"{name}_hi"] = intervals[:, j, 0], intervals[:, j, 1]
    return part, pairs


def leaderboard_table(df: pd.DataFrame, *, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Mean and std (ddof=1; NaN for one seed) over seeds of the leaderboard metrics, one row per
    (task identity, data hash, backbone, method, method version, config hash), with significance
    ranks within each task group (module docstring; 1 = best, rows that cannot be told apart
    share a rank; NA for an undefined mean and for the reference), sorted by group, rank and mean.
    Columns: the row keys, `rank`, `role` (method | noise ceiling | reference), `rank_basis`
    (paired | mean | ""), `n_seeds`, `seeds`, `harness_versions`, `<metric>_mean`,
    `<metric>_std` for each metric shown (an @10 metric absent from a task group falls back to its
    largest K there; the @10 column is then NaN for that group) and `<metric>_lo`, `<metric>_hi`:
    the 95 % interval over (seed, example) resamples for INTERVAL_METRICS (NaN without evidence).
    `attrs["separated_pairs"]` maps each group's keys to (significantly separated pairs, pairs
    tested). Evidence files named by `df["evidence"]` are read; `df` is not changed."""
    if df.empty:
        raise ResultsError("no results to tabulate")
    parts, separated = [], {}
    for keys, group in df.groupby(GROUP_KEYS, sort=True):
        part, separated[tuple(keys)] = _group_rows(group, n_boot, seed)
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    # every requested column exists, NaN where a group fell back or lacked it
    for name in LEADERBOARD_METRICS:
        for stat in ("_mean", "_std"):
            if name + stat not in table:
                table[name + stat] = np.nan
    table["rank"] = table["rank"].astype("Int64")
    table["_order"] = -table[f"{HEADLINE}_mean"].fillna(-np.inf)
    table = (
        table.sort_values(
            [*GROUP_KEYS, "rank", "_order", "method", "method_version", "config_hash"],
            na_position="last",
        )
        .drop(columns="_order")
        .reset_index(drop=True)
    )
    fixed = [*ROW_KEYS, "rank", "role", "verified", "rank_basis", "n_seeds", "seeds",
             "harness_versions", "board"]  # fmt: skip
    stats = [c for c in table.columns if c not in fixed]
    order = {m: i for i, m in enumerate(LEADERBOARD_METRICS)}

    def key(col: str) -> tuple:
        name, stat = col.rsplit("_", 1)
        rank = order.get(name, order.get(f"{metric_base(name)}@{PREFERRED_K}", 99))
        return (rank, name, STATS.index(stat))

    table = table[fixed + sorted(stats, key=key)]
    table.attrs = {**df.attrs, "separated_pairs": separated}
    return table


def sections(table: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """The task groups of a leaderboard table, in order: ((identity, data hash, backbone), rows)."""
    return [
        (tuple(keys), rows.reset_index(drop=True))
        for keys, rows in table.groupby(GROUP_KEYS, sort=True)
    ]  # fmt: skip


def section_notes(
    table: pd.DataFrame, keys: tuple[str, str, str], section: pd.DataFrame
) -> list[str]:
    """The lines printed under a section: how many pairs are significantly separated, which rows
    are ranked by mean (no evidence) and what the reference row is."""
    boards = sorted(set(" | ".join(section["board"]).split(" | ")))
    notes = [("board: " if len(boards) == 1 else "mixed boards: ") + "; ".join(boards)]
    pairs = table.attrs.get("separated_pairs", {}).get(tuple(keys))
    if pairs and pairs[1]:
        notes.append(f"significantly separated pairs: {pairs[0]} of {pairs[1]}")
    by_mean = section.loc[section["rank_basis"] == "mean", "method"].tolist()
    if by_mean:
        notes.append("ranked by mean, not significance (no evidence or no shared seed): "
                     + ", ".join(by_mean))  # fmt: skip
    if (section["role"] == "noise ceiling").any():
        notes.append("noise ceiling: retrain scored against another seed's oracle")
    if (section["role"] == "reference").any():
        notes.append("ref: the retrain oracle itself (one seed: no noise ceiling), unranked")
    return notes


# ---- rendering -------------------------------------------------------------------------------

FORMATS = ("md", "csv", "latex", "html")
MISSING = "–"
NOTE = (
    "mean ± std over seeds, erasure score's 95 % CI over (seed, example) resamples; rank = 1 + "
    "methods significantly better (paired bootstrap, 95 %), shared by methods that cannot be told "
    "apart; ↑ higher is better, ↓ lower is better"
)
CI_HEADER = f"{HEADLINE} 95% CI"


def direction_arrow(name: str) -> str:
    """'↑' for a higher-is-better metric, '↓' for lower-is-better, '' when undeclared."""
    from benchmark.metrics.registry import METRICS

    metric = METRICS.get(metric_base(name))
    return "" if metric is None else ("↑" if metric.higher_is_better else "↓")


def decimals(means: pd.Series) -> int:
    """Decimals for a column: 3 for values below 10, 1 below 1000, else 0."""
    finite = means[np.isfinite(means.astype(np.float64))].abs()
    top = float(finite.max()) if len(finite) else 0.0
    return 3 if top < 10 else (1 if top < 1000 else 0)


def cell(mean: float, std: float, digits: int) -> str:
    """'0.894 ± 0.008'; the mean alone for one seed; '–' when undefined."""
    if not np.isfinite(mean):
        return MISSING
    if not np.isfinite(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def interval_cell(lo: float, hi: float, digits: int = 3) -> str:
    """'[0.801, 0.911]'; '–' when undefined."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return MISSING
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def rank_text(rank: object, role: str) -> str:
    if role == "reference":
        return "ref"
    return MISSING if pd.isna(rank) else str(rank)


def method_text(row: pd.Series) -> str:
    label = f"{row['method']} {row['method_version']}"
    label = label if row["role"] == "method" else f"{label} ({row['role']})"
    return label + (" ✓" if row.get("verified") is True else "")


def section_title(keys: tuple[str, str, str]) -> str:
    identity, data_hash, backbone = keys
    return f"{identity} (data {data_hash[:12]}, backbone {backbone[:12]})"


def display_columns(
    section: pd.DataFrame, metrics: list[str] | None = None
) -> list[tuple[str, list[str], list[object]]]:
    """(header, shown texts, raw values for sorting) of each column of a section: rank ('ref' for
    the reference), method (with its role), config, seeds, then 'mean ± std' cells under headers
    carrying the metric's direction arrow (only `metrics`, by name or base name, when given), the
    erasure score's interval right after it when the section has one."""
    roles = section["role"].tolist()
    cols: list[tuple[str, list[str], list[object]]] = [
        ("rank", [rank_text(r, o) for r, o in zip(section["rank"], roles, strict=True)],
         list(section["rank"])),
        ("method", [method_text(r) for _, r in section.iterrows()],
         [f"{m} {v}" for m, v in zip(section["method"], section["method_version"], strict=True)]),
        ("config", section["config_hash"].str[:8].tolist(), list(section["config_hash"])),
        ("seeds", section["n_seeds"].astype(str).tolist(), list(section["n_seeds"])),
    ]  # fmt: skip
    names = section_metrics(section)
    if metrics:
        names = [n for n in names if n in metrics or metric_base(n) in metrics]
    for name in names:
        means, stds = section[f"{name}_mean"], section[f"{name}_std"]
        digits = decimals(means)
        header = f"{name} {direction_arrow(name)}".strip()
        texts = [cell(m, s, digits) for m, s in zip(means, stds, strict=True)]
        cols.append((header, texts, list(means)))
        lo, hi = section.get(f"{name}_lo"), section.get(f"{name}_hi")
        if name == HEADLINE and lo is not None and hi is not None and lo.notna().any():
            texts = [interval_cell(a, b) for a, b in zip(lo, hi, strict=True)]
            cols.append((CI_HEADER, texts, list(lo)))
    return cols


def display_frame(section: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """A section of the table as strings (see `display_columns`)."""
    return pd.DataFrame({h: texts for h, texts, _ in display_columns(section, metrics)})


def _latex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text


def format_table(table: pd.DataFrame, fmt: str = "md", metrics: list[str] | None = None) -> str:
    """The leaderboard as text: `md` (GitHub markdown), `latex` (booktabs) or `html` (plain
    tables), one headed section per task group with 'mean ± std' cells; or `csv`, one
    machine-readable table with numeric `<metric>_mean` / `<metric>_std` (and `_lo` / `_hi`)
    columns. Under each section: its notes (`section_notes`)."""
    if fmt not in FORMATS:
        raise ResultsError(f"unknown table format '{fmt}' (choose one of {', '.join(FORMATS)})")
    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.10g")
    return format_view(table, fmt, lambda section: display_frame(section, metrics))


# ---- the headline view: the README's narrow table ----------------------------------------------

VIEWS = ("full", "compact", "headline")
LATEX_SYMBOLS = (("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), (MISSING, "--"))


def headline_frame(section: pd.DataFrame) -> pd.DataFrame:
    """A section as the narrow view: rank, method (with its role), seeds, the erasure score, its
    95 % interval, the forgetting part and the utility part (`display_columns`, less config)."""
    columns = display_columns(section, list(INTERVAL_METRICS))
    return pd.DataFrame({h: texts for h, texts, _ in columns if h != "config"})


def format_headline(table: pd.DataFrame, fmt: str = "md") -> str:
    """The leaderboard's headline view (`leaderboard --view headline`): `format_table` with the
    columns of `headline_frame`, the same note above and the same notes under each section; `csv`
    keeps the row keys, rank, role, seeds and the numeric columns of INTERVAL_METRICS (the
    headline and its two parts)."""
    if fmt == "csv":
        stats = [f"{m}_{s}" for m in INTERVAL_METRICS for s in STATS if f"{m}_{s}" in table]
        keep = [*ROW_KEYS, "rank", "role", "verified", "rank_basis", "n_seeds", "seeds", "board"]
        return format_table(table[keep + stats], "csv")
    if fmt not in FORMATS:
        raise ResultsError(f"unknown table format '{fmt}' (choose one of {', '.join(FORMATS)})")
    return format_view(table, fmt, headline_frame)


def format_view(
    table: pd.DataFrame, fmt: str, frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> str:
    """`format_table`'s md / html / latex rendering with each section's columns made by `frame`
    (a section of `table` -> a frame of strings)."""
    from tabulate import tabulate

    out = [{"md": f"_{NOTE}_\n", "html": f"<p>{NOTE}</p>"}.get(fmt, f"% {NOTE}")]
    tablefmt = {"md": "github", "html": "html"}.get(fmt, "latex_booktabs")
    for keys, section in sections(table):
        body = tabulate(
            frame(section),
            headers="keys",
            tablefmt=tablefmt,
            showindex=False,
            disable_numparse=True,
        )
        notes = section_notes(table, keys, section)
        if fmt == "md":
            lines = "".join(f"\n{n}\n" for n in notes)
            out.append(f"## {section_title(keys)}\n\n{body}\n{lines}")
        elif fmt == "html":
            import html

            lines = "".join(f"\n<p>{html.escape(n)}</p>" for n in notes)
            out.append(f"<h2>{html.escape(section_title(keys))}</h2>\n{body}{lines}")
        else:
            for char, macro in LATEX_SYMBOLS:
                body = body.replace(char, macro)
            lines = "".join(f"\n\n{_latex_escape(n)}" for n in notes)
            title = _latex_escape(section_title(keys))
            out.append(f"\\subsection*{{{title}}}\n{body}{lines}\n")
    return "\n".join(out)
