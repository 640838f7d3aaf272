"""The forget-vs-retain trade-off plot of one task group (DESIGN §6), drawn with matplotlib's Agg
canvas (no pyplot, no global backend state)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.atomic import write_bytes_atomic
from leaderboard.table import GROUP_KEYS, ResultsError

ISO_SCORES = (0.2, 0.4, 0.6, 0.8)  # erasure-score contours drawn for reference


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
    names = (rows["method"] + " " + rows["method_version"]).tolist()
    return [
        f"{n} [{h[:8]}]" if names.count(n) > 1 else n
        for n, h in zip(names, rows["config_hash"], strict=True)
    ]  # fmt: skip


def tradeoff_png(
    table: pd.DataFrame,
    task_identity: str,
    *,
    data_hash: str | None = None,
    backbone_hash: str | None = None,
) -> bytes:
    """The trade-off plot as PNG bytes: x = forgetting part mean, y = utility part (retained
    NDCG@10 ratio, capped at 1) mean, one labelled point per method with seed-std error bars and
    faint erasure-score contours. Methods whose parts are undefined are listed, not drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = _select(table, task_identity, data_hash, backbone_hash)
    fig = Figure(figsize=(6.4, 5.2), dpi=100)
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
    missing: list[str] = []
    at: dict[tuple[float, float], list[str]] = {}
    for label, (_, row) in zip(_labels(rows), rows.iterrows(), strict=True):
        x, y = row["forgetting_part_mean"], row["utility_part_mean"]
        if not (np.isfinite(x) and np.isfinite(y)):
            missing.append(label)
            continue
        xerr = row["forgetting_part_std"] if np.isfinite(row["forgetting_part_std"]) else 0.0
        yerr = row["utility_part_std"] if np.isfinite(row["utility_part_std"]) else 0.0
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", capsize=3, ms=6, label=label)
        at.setdefault((round(x, 3), round(y, 3)), []).append(label)
    for (x, y), names in at.items():  # methods on the same spot share one label
        ax.annotate(", ".join(names), (x, y), xytext=(5, 5), textcoords="offset points",
                    fontsize=8)  # fmt: skip
    ax.set_xlim(-0.03, 1.08)
    ax.set_ylim(-0.03, 1.08)
    ax.set_xlabel("forgetting part  min(FE@10, FE_latent@10)  →")
    ax.set_ylabel("utility part  min(1, retained NDCG@10 ratio)  →")
    title = f"{task_identity}: forget vs retain (mean ± std over seeds)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.93", lw=0.6)
    if missing:
        fig.text(0.01, 0.01, "not drawn (undefined): " + ", ".join(missing), fontsize=7)
    fig.tight_layout()
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
