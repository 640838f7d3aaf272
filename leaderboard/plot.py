"""The forgetting-vs-utility trade-off plot of one task group (DESIGN §5, §6), drawn with
matplotlib's Agg canvas (no pyplot, no global backend state): x = forgetting part, y = utility
part, 95 % intervals over (seed, example) resamples as error bars (the seed std where a row has
no evidence), each method its own marker and colour in a legend, the noise ceiling (the retrain
row re-scored against another seed's oracle) a star with dashed lines at its two parts."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.results.record import ResultsError
from benchmark.util.atomic import write_bytes_atomic
from leaderboard.table import GROUP_KEYS, method_text, rank_text, sections

ISO_SCORES = (0.2, 0.4, 0.6, 0.8)  # erasure-score contours drawn for reference
MARKERS = "osD^vP<>XphH8d"  # "*" is the noise ceiling's
CEILING_COLOUR = "#d4a017"


def _select(
    table: pd.DataFrame, task_identity: str, data_hash: str | None, backbone_hash: str | None
) -> pd.DataFrame:
    rows = table[table["task_identity"] == task_identity]
    if data_hash is not None:
        rows = rows[rows["task_data_hash"] == data_hash]
    if backbone_hash is not None:
        rows = rows[rows["backbone_hash"] == backbone_hash]
    if rows.empty:
        raise ResultsError(f"no leaderboard rows for task {task_identity}")
    n_groups = len(rows.groupby(GROUP_KEYS))
    if n_groups > 1:
        raise ResultsError(
            f"task {task_identity} has results for {n_groups} (data hash, backbone) pairs; "
            "pass data_hash and backbone_hash to choose one"
        )
    return rows


def _labels(rows: pd.DataFrame) -> list[str]:
    """'rank. method version [config]' (the config hash only where a method appears twice)."""
    names = (rows["method"] + " " + rows["method_version"]).tolist()
    return [
        f"{rank_text(r['rank'], r['role'])}. {method_text(r)}"
        + (f" [{r['config_hash'][:8]}]" if names.count(n) > 1 else "")
        for n, (_, r) in zip(names, rows.iterrows(), strict=True)
    ]  # fmt: skip


def _errors(row: pd.Series, name: str) -> tuple[float, float]:
    """(below, above) the mean: the seed interval where the row has one, else the seed std."""
    mean, lo, hi = row[f"{name}_mean"], row.get(f"{name}_lo", np.nan), row.get(f"{name}_hi", np.nan)
    if np.isfinite(lo) and np.isfinite(hi):
        return max(0.0, mean - lo), max(0.0, hi - mean)
    std = row[f"{name}_std"]
    return (std, std) if np.isfinite(std) else (0.0, 0.0)


def tradeoff_png(
    table: pd.DataFrame,
    task_identity: str,
    *,
    data_hash: str | None = None,
    backbone_hash: str | None = None,
) -> bytes:
    """The trade-off plot as PNG bytes: x = forgetting part mean, y = utility part mean, one
    marker per method (legend: rank and method) with 95 % (seed, example) interval error bars (seed
    std without evidence), faint erasure-score contours; the noise ceiling as a star with dashed
    lines at its parts. The reference row (one-seed retrain, trivially perfect) and methods whose
    parts are undefined are listed under the plot, not drawn."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _select(table, task_identity, data_hash, backbone_hash)
    fig = Figure(figsize=(8.4, 5.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = np.linspace(0.0, 1.0, 400)
    for c in ISO_SCORES:  # harmonic mean 2xy/(x+y) = c  <=>  y = c x / (2x - c)
        x = xs[xs > c / 2 + 1e-3]
        y = c * x / (2 * x - c)
        keep = y <= 1.05
        ax.plot(x[keep], y[keep], color="0.85", lw=0.8, zorder=0)
        ax.annotate(f"{c:.1f}", (1.0, c / (2 - c)), fontsize=7, color="0.6",
                    xytext=(2, 0), textcoords="offset points", va="center")  # fmt: skip
    # both are ListedColormaps; the stubs type colormaps[...] as the Colormap base class
    colours = list(colormaps["tab10"].colors) + list(colormaps["Dark2"].colors)  # type: ignore[attr-defined]
    missing: list[str] = []
    n = 0
    for label, (_, row) in zip(_labels(rows), rows.iterrows(), strict=True):
        x, y = row["forgetting_part_mean"], row["utility_part_mean"]
        if row["role"] == "reference" or not (np.isfinite(x) and np.isfinite(y)):
            missing.append(label)
            continue
        style: dict[str, Any]  # matplotlib keyword arguments
        if row["role"] == "noise ceiling":
            style = {"marker": "*", "color": CEILING_COLOUR, "ms": 15, "mec": "0.2", "zorder": 4}
            ax.axvline(x, color=CEILING_COLOUR, ls="--", lw=1, zorder=1)
            ax.axhline(y, color=CEILING_COLOUR, ls="--", lw=1, zorder=1)
        else:
            style = {"marker": MARKERS[n % len(MARKERS)], "color": colours[n % len(colours)],
                     "ms": 7, "mec": "white", "mew": 0.6, "zorder": 3}  # fmt: skip
            n += 1
        xerr = np.array(_errors(row, "forgetting_part")).reshape(2, 1)
        yerr = np.array(_errors(row, "utility_part")).reshape(2, 1)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", capsize=3, elinewidth=1, alpha=0.8,
                    ecolor=style["color"], zorder=2)  # fmt: skip
        ax.plot(x, y, ls="none", label=label, **style)
    ax.set_xlim(-0.03, 1.08)
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlabel("forgetting part  min(served forgetting, oracle match)  →")
    ax.set_ylabel("utility part  min(1, retained NDCG@10 ratio)  →")
    ax.set_title(f"{task_identity}: forgetting vs utility (mean, 95 % interval)", fontsize=10)
    ax.grid(True, color="0.93", lw=0.6)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                  title="rank. method", title_fontsize=7)  # fmt: skip
    if missing:
        fig.text(0.01, 0.01, "not drawn: " + ", ".join(missing), fontsize=7)
    fig.tight_layout(rect=(0, 0.03 if missing else 0, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def tradeoff_plot(
    table: pd.DataFrame,
    task_identity: str,
    path: str | Path,
    *,
    data_hash: str | None = None,
    backbone_hash: str | None = None,
) -> Path:
    """Write the trade-off plot of one task (see `tradeoff_png`) as a PNG at `path`, atomically.
    A task with results for several data hashes or backbones needs `data_hash`/`backbone_hash`."""
    png = tradeoff_png(table, task_identity, data_hash=data_hash, backbone_hash=backbone_hash)
    return write_bytes_atomic(path, png)


def plot_name(identity: str, data_hash: str, backbone: str, unique: bool) -> str:
    """A file name for a task group's plot: the task identity, plus short hashes when the
    identity has several (data hash, backbone) groups."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.replace("@", "-"))
    return f"{stem}.png" if unique else f"{stem}-{data_hash[:8]}-{backbone[:8]}.png"


def write_plots(table: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """One trade-off plot per task group under `out_dir`; returns the paths written."""
    groups = [keys for keys, _ in sections(table)]
    paths = []
    for identity, data_hash, backbone in groups:
        unique = sum(g[0] == identity for g in groups) == 1
        path = Path(out_dir) / plot_name(identity, data_hash, backbone, unique)
        paths.append(
            tradeoff_plot(table, identity, path, data_hash=data_hash, backbone_hash=backbone)
        )
    return paths
