"""Load a results folder and aggregate it into a leaderboard table (DESIGN §6).

A results folder holds `<task>/<method>/seed<N>.json` (benchmark.results.result_record);
`seed<N>.failed.json` files are failed runs (skipped, counted) and anything else is ignored.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.errors import BenchError

RESULT_NAME = re.compile(r"seed(\d+)\.json")
FAILED_NAME = re.compile(r"seed(\d+)\.failed\.json")

# a row of the leaderboard never mixes two values of these (DESIGN §6)
GROUP_KEYS = ["task_identity", "task_data_hash", "backbone_hash"]
ROW_KEYS = [*GROUP_KEYS, "method", "method_version", "config_hash"]
ID_COLUMNS = [*ROW_KEYS, "task_name", "seed", "harness_version", "path"]

# the columns of the leaderboard, headline first; "@10" metrics fall back to the largest K
COMPACT_METRICS = [  # what `run` prints, and `leaderboard --compact`
    "erasure_score", "forgetting_part", "utility_part", "retained_ndcg_ratio@10",
    "collateral_ndcg_ratio@10", "ce@10", "fe_latent@10", "latent_forget_mean_rank",
    "relearn_forget_recall@10", "relearn_oracle_forget_recall@10", "unlearn_seconds",
    "speedup_over_retrain",
]  # fmt: skip
LEADERBOARD_METRICS = [
    "erasure_score",
    "forgetting_part",
    "utility_part",
    "retained_ndcg_ratio@10",
    "retained_recall@10",
    "retained_ndcg@10",
    "collateral_ndcg_ratio@10",
    "fe@10",
    "fe_latent@10",
    "ce@10",
    "latent_forget_recall@10",
    "latent_forget_mean_rank",
    "relearn_forget_recall@10",
    "relearn_oracle_forget_recall@10",
    "retain_geometry_spearman",
    "code_purity_ratio",
    "unlearn_seconds",
    "peak_memory_mib",
    "speedup_over_retrain",
]
HEADLINE = "erasure_score"
PREFERRED_K = 10
COST_METRICS = ("unlearn_seconds", "peak_memory_mib", "speedup_over_retrain")


class ResultsError(BenchError):
    """A results folder that is missing or empty, or a result file that cannot be read."""


def _field(data: dict, dotted: str, path: Path, kinds: tuple[type, ...]) -> object:
    value: object = data
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ResultsError(f"{path}: missing field '{dotted}'")
        value = value[part]
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ResultsError(f"{path}: field '{dotted}' has the wrong type ({type(value).__name__})")
    return value


def _number(value: object, path: Path, field: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultsError(f"{path}: field '{field}' is not a number ({value!r})")
    return float(value)


def read_result(path: Path) -> dict:
    """One result file as a flat row: identity columns plus one column per metric value."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read result file ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: a result file must hold a JSON object")
    row: dict = {
        "task_identity": _field(data, "task.identity", path, (str,)),
        "task_name": _field(data, "task.name", path, (str,)),
        "task_data_hash": _field(data, "task.data_hash", path, (str,)),
        "backbone_hash": _field(data, "backbone.config_hash", path, (str,)),
        "method": _field(data, "method.name", path, (str,)),
        "method_version": _field(data, "method.version", path, (str,)),
        "config_hash": _field(data, "method.config_hash", path, (str,)),
        "seed": _field(data, "seed", path, (int,)),
        "harness_version": _field(data, "harness_version", path, (str,)),
        "path": str(path),
    }
    match = RESULT_NAME.fullmatch(Path(path).name)
    if match and int(match.group(1)) != row["seed"]:
        raise ResultsError(
            f"{path}: field 'seed' is {row['seed']} but the file name says seed{match.group(1)}"
        )
    metrics = _field(data, "metrics", path, (dict,))
    for name, entry in metrics.items():
        field = f"metrics.{name}.value"
        if name in ID_COLUMNS:
            raise ResultsError(f"{path}: metric name '{name}' clashes with an identity column")
        if not isinstance(entry, dict) or "value" not in entry:
            raise ResultsError(f"{path}: missing field '{field}'")
        row[name] = _number(entry["value"], path, field)
    cost = data.get("cost", {})
    if isinstance(cost, dict):  # cost metrics missing from `metrics` are taken from `cost`
        for name in COST_METRICS:
            if name not in row and name in cost:
                row[name] = _number(cost[name], path, f"cost.{name}")
    return row


def find_result_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(result files, failed-run files) under `folder`, sorted; other files are ignored."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultsError(f"results folder {folder} does not exist")
    if not folder.is_dir():
        raise ResultsError(f"results folder {folder} is not a folder")
    files = sorted(p for p in folder.rglob("*.json") if p.is_file())
    results = [p for p in files if RESULT_NAME.fullmatch(p.name)]
    failed = [p for p in files if FAILED_NAME.fullmatch(p.name)]
    return results, failed


def load_results(folder: str | Path) -> pd.DataFrame:
    """One row per result file under `folder`: task identity and data hash, backbone config hash,
    method name / version / config hash, seed, and one column per metric value (NaN if absent).
    `df.attrs` holds `folder`, `failed` (number of failed-run files skipped) and `failed_files`."""
    results, failed = find_result_files(folder)
    if not results:
        extra = f" ({len(failed)} failed runs only)" if failed else ""
        raise ResultsError(f"no result files (<task>/<method>/seed<N>.json) in {folder}{extra}")
    rows = [read_result(p) for p in results]
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


def metric_base(name: str) -> str:
    """`fe_latent@10` -> `fe_latent`."""
    return name.split("@", 1)[0]


def metric_k(name: str) -> int | None:
    _, _, k = name.partition("@")
    return int(k) if k.isdigit() else None


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


def leaderboard_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (ddof=1; NaN for one seed) over seeds of the leaderboard metrics, one row per
    (task identity, data hash, backbone, method, method version, config hash), ranked within each
    task group (identity, data hash, backbone) by mean erasure score (1 = best, ties share the
    best rank), sorted by group then rank. A mean over seeds is NaN when any seed's value is.
    Columns: the row keys, `rank`, `n_seeds`, `seeds`, `harness_versions`, and `<metric>_mean`,
    `<metric>_std` for each metric shown (an @10 metric that is absent from a task group falls
    back to its largest K there; the @10 column is then NaN for that group)."""
    if df.empty:
        raise ResultsError("no results to tabulate")
    parts = []
    for _, group in df.groupby(GROUP_KEYS, sort=True):
        group = group.dropna(axis=1, how="all")
        has = _has_data(group)
        shown = [resolve_metric(m, has) for m in LEADERBOARD_METRICS]
        rows = []
        for keys, runs in group.groupby(ROW_KEYS, sort=True):
            row = dict(zip(ROW_KEYS, keys, strict=True))
            row["n_seeds"] = len(runs)
            row["seeds"] = " ".join(str(s) for s in sorted(runs["seed"]))
            row["harness_versions"] = " ".join(sorted(set(runs["harness_version"])))
            for name in dict.fromkeys(shown):
                values = runs[name] if name in runs else pd.Series(np.nan, index=runs.index)
                row[f"{name}_mean"] = values.mean(skipna=False)
                row[f"{name}_std"] = values.std(ddof=1, skipna=False)
            rows.append(row)
        part = pd.DataFrame(rows)
        score = part[f"{HEADLINE}_mean"].round(12)
        part.insert(len(ROW_KEYS), "rank", score.rank(method="min", ascending=False))
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    # every requested column exists, NaN where a group fell back or lacked it
    for name in LEADERBOARD_METRICS:
        for stat in ("_mean", "_std"):
            if name + stat not in table:
                table[name + stat] = np.nan
    table["rank"] = table["rank"].astype("Int64")
    table = table.sort_values(
        [*GROUP_KEYS, "rank", "method", "method_version", "config_hash"], na_position="last"
    ).reset_index(drop=True)
    fixed = [*ROW_KEYS, "rank", "n_seeds", "seeds", "harness_versions"]
    stats = [c for c in table.columns if c not in fixed]
    order = {m: i for i, m in enumerate(LEADERBOARD_METRICS)}

    def key(col: str) -> tuple:
        name, stat = col.rsplit("_", 1)
        return (order.get(name, order.get(f"{metric_base(name)}@{PREFERRED_K}", 99)), name, stat)

    table = table[fixed + sorted(stats, key=key)]
    table.attrs = dict(df.attrs)
    return table


def sections(table: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """The task groups of a leaderboard table, in order: ((identity, data hash, backbone), rows)."""
    return [
        (tuple(keys), rows.reset_index(drop=True))
        for keys, rows in table.groupby(GROUP_KEYS, sort=True)
    ]  # fmt: skip


# ---- rendering -------------------------------------------------------------------------------

FORMATS = ("md", "csv", "latex", "html")
MISSING = "–"
NOTE = "mean ± std over seeds; ↑ higher is better, ↓ lower is better"


def direction_arrow(name: str) -> str:
    """'↑' for a higher-is-better metric, '↓' for lower-is-better, '' when undeclared."""
    from benchmark.metrics import METRICS

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


def section_title(keys: tuple[str, str, str]) -> str:
    identity, data_hash, backbone = keys
    return f"{identity} (data {data_hash[:12]}, backbone {backbone[:12]})"


def display_frame(section: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """A section of the table as strings: rank, method, config, seeds, then 'mean ± std' cells
    under headers carrying the metric's direction arrow (only `metrics`, by name or base name,
    when given)."""
    out = pd.DataFrame(
        {
            "rank": [MISSING if pd.isna(r) else str(r) for r in section["rank"]],
            "method": section["method"] + " " + section["method_version"],
            "config": section["config_hash"].str[:8],
            "seeds": section["n_seeds"].astype(str),
        }
    )
    names = section_metrics(section)
    if metrics:
        names = [n for n in names if n in metrics or metric_base(n) in metrics]
    for name in names:
        means, stds = section[f"{name}_mean"], section[f"{name}_std"]
        digits = decimals(means)
        header = f"{name} {direction_arrow(name)}".strip()
        out[header] = [cell(m, s, digits) for m, s in zip(means, stds, strict=True)]
    return out


def _latex_escape(text: str) -> str:
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text


def format_table(table: pd.DataFrame, fmt: str = "md", metrics: list[str] | None = None) -> str:
    """The leaderboard as text: `md` (GitHub markdown), `latex` (booktabs) or `html` (plain
    tables), one headed section per task group with 'mean ± std' cells; or `csv`, one
    machine-readable table with numeric `<metric>_mean` / `<metric>_std` columns."""
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise ResultsError(f"unknown table format '{fmt}' (choose one of {', '.join(FORMATS)})")
    if fmt == "csv":
        return table.to_csv(index=False, float_format="%.10g")
    out = []
    if fmt == "md":
        out.append(f"_{NOTE}_\n")
    elif fmt == "html":
        out.append(f"<p>{NOTE}</p>")
    else:
        out.append(f"% {NOTE}")
    for keys, section in sections(table):
        frame = display_frame(section, metrics)
        if fmt == "md":
            body = tabulate(frame, headers="keys", tablefmt="github", showindex=False,
                            disable_numparse=True)  # fmt: skip
            out.append(f"## {section_title(keys)}\n\n{body}\n")
        elif fmt == "html":
            import html

            body = tabulate(frame, headers="keys", tablefmt="html", showindex=False,
                            disable_numparse=True)  # fmt: skip
            out.append(f"<h2>{html.escape(section_title(keys))}</h2>\n{body}")
        else:
            body = tabulate(frame, headers="keys", tablefmt="latex_booktabs", showindex=False,
                            disable_numparse=True)  # fmt: skip
            for char, macro in (("±", r"$\pm$"), ("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"),
                                (MISSING, "--")):  # fmt: skip
                body = body.replace(char, macro)
            out.append(f"\\subsection*{{{_latex_escape(section_title(keys))}}}\n{body}\n")
    return "\n".join(out)
