"""A sequential task's board (DESIGN §5): every step's erasure score per method with the final
step's significance rank and each step's noise ceiling, retention (each request's forgetting
part when it was made and at the last step), drift (the utility part over its value after step
1), the cumulative cost against retraining at every step, the concepts removed all at once beside
the sequence's last step, and a plot of the erasure score over the steps. A pure function of a
results folder: the steps are tasks of their own (`<sequence>.<j>`), their records' `sequence`
blocks hold what `validate` recomputes from the evidence."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.metrics.protocol import is_oracle
from benchmark.metrics.registry import HEADLINE
from benchmark.metrics.sequence import drift
from benchmark.results.record import ResultRecord
from benchmark.util.atomic import write_bytes_atomic
from leaderboard.plot import MARKERS
from leaderboard.table import MISSING

PARTS = (HEADLINE, "forgetting_part", "utility_part")


def sequence_frame(results: pd.DataFrame) -> pd.DataFrame:
    """One row per step record: sequence, step, steps, method, seed, the headline and its parts,
    cumulative costs and `request_<i>` (request i's forgetting part at this step)."""
    rows = []
    for path in results.loc[results["step"] > 0, "path"]:  # only steps carry a sequence block
        rec = ResultRecord.read(path)
        block = rec.sequence
        if not isinstance(block, dict):
            continue
        row = {
            "sequence": block["sequence"], "name": rec.task.name.rsplit(".", 1)[0],
            "step": int(block["step"]),
            "steps": int(block["steps"]), "method": rec.method.name, "seed": rec.seed,
            "task_identity": rec.task.identity,
            "cumulative_unlearn_seconds": float(block["cumulative_unlearn_seconds"]),
            "cumulative_retrain_seconds": float(block["cumulative_retrain_seconds"]),
        }  # fmt: skip
        row.update({name: rec.metric(name) for name in PARTS})
        for i, stats in block["request_forgetting"].items():
            row[f"request_{i}"] = float(stats["forgetting_part"]["value"])
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return MISSING
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else "")


def steps_table(seq: pd.DataFrame, board: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per method: the erasure score at every step (mean ± std over seeds) and its rank at the
    last step; the noise ceiling's row (the retrain oracle scored against another seed's)."""
    k = int(seq["steps"].max())
    out = []
    for method, rows in seq.groupby("method", sort=True):
        line = {"method": f"{method} (scored against itself)" if is_oracle(method) else method}
        for j in range(1, k + 1):
            line[f"step {j}"] = _mean_std(rows.loc[rows["step"] == j, HEADLINE])
        out.append(line)
    table = pd.DataFrame(out)
    final = board[board["task_identity"].str.startswith(f"{name}.{k}@")]
    ranks = {r["method"]: r["rank"] for _, r in final.iterrows() if r["role"] == "method"}
    table.insert(1, "rank", [_rank(ranks.get(m)) for m in table["method"]])
    ceiling = {"method": "noise ceiling (retrain vs another seed)", "rank": ""}
    for j in range(1, k + 1):
        rows = board[board["task_identity"].str.startswith(f"{name}.{j}@")]
        nc = rows[rows["role"] == "noise ceiling"]
        ceiling[f"step {j}"] = f"{nc[f'{HEADLINE}_mean'].iloc[0]:.3f}" if len(nc) else MISSING
    table = pd.concat([table, pd.DataFrame([ceiling])], ignore_index=True)
    table["_r"] = pd.to_numeric(table["rank"], errors="coerce").fillna(99)
    return table.sort_values(["_r", "method"]).drop(columns="_r").reset_index(drop=True)


def _rank(rank: object) -> str:
    return "" if rank is None or pd.isna(rank) else str(int(rank))  # type: ignore[call-overload]


def retention_table(seq: pd.DataFrame) -> pd.DataFrame:
    """Per method and earlier request i: its forgetting part at step i and at the last step
    (mean over seeds), and the change."""
    k = int(seq["steps"].max())
    out = []
    for method, rows in seq.groupby("method", sort=True):
        if is_oracle(method):
            continue
        line: dict = {"method": method}
        for i in range(1, k):
            at_i = rows.loc[rows["step"] == i, f"request_{i}"].mean()
            at_k = rows.loc[rows["step"] == k, f"request_{i}"].mean()
            line[f"request {i}: step {i} → {k}"] = f"{at_i:.3f} → {at_k:.3f} ({at_k - at_i:+.3f})"
        out.append(line)
    return pd.DataFrame(out)


def drift_table(seq: pd.DataFrame) -> pd.DataFrame:
    """Per method: the utility part after each step (mean over seeds) and its drift (the per-seed
    ratio to step 1, averaged over seeds)."""
    k = int(seq["steps"].max())
    out = []
    for method, rows in seq.groupby("method", sort=True):
        if is_oracle(method):
            continue
        by_seed = rows.pivot_table(index="seed", columns="step", values="utility_part")
        line: dict = {"method": method}
        for j in range(1, k + 1):
            line[f"utility step {j}"] = _mean_std(by_seed.get(j, pd.Series(dtype=float)))
        for j in range(2, k + 1):
            if j in by_seed and 1 in by_seed:
                ratios = [drift(a, b) for a, b in zip(by_seed[j], by_seed[1], strict=True)]
                line[f"drift step {j}"] = f"{np.nanmean(ratios):.3f}"
            else:
                line[f"drift step {j}"] = MISSING
        out.append(line)
    return pd.DataFrame(out)


def cost_table(seq: pd.DataFrame) -> pd.DataFrame:
    """Per method at the last step: cumulative unlearning seconds, cumulative retraining seconds
    (an oracle trained at every step), and their ratio (the speed-up of unlearning)."""
    k = int(seq["steps"].max())
    last = seq[seq["step"] == k]
    out = []
    for method, rows in last.groupby("method", sort=True):
        u, r = rows["cumulative_unlearn_seconds"].mean(), rows["cumulative_retrain_seconds"].mean()
        out.append({"method": method, "unlearning s (steps 1..k)": f"{u:.1f}",
                    "retraining s (steps 1..k)": f"{r:.1f}",
                    "speed-up": f"{r / u:.3g}×" if u > 0 else MISSING})  # fmt: skip
    return pd.DataFrame(out)


def at_once_table(seq: pd.DataFrame, board: pd.DataFrame, name: str) -> pd.DataFrame | None:
    """The sequence's last step beside the same concepts removed as one request (`<name>.all`),
    where the folder holds it: the erasure score and its parts, mean over seeds."""
    k = int(seq["steps"].max())
    once = board[board["task_identity"].str.startswith(f"{name}.all@")]
    if once.empty:
        return None
    last = seq[seq["step"] == k]
    out = []
    for _, row in once.iterrows():
        if row["role"] != "method":
            continue
        mine = last[last["method"] == row["method"]]
        line = {"method": row["method"]}
        for part in PARTS:
            std = row[f"{part}_std"]
            line[f"{part} sequential"] = _mean_std(mine[part])
            line[f"{part} at once"] = f"{row[f'{part}_mean']:.3f}" + (
                f" ± {std:.3f}" if np.isfinite(std) else ""
            )
        line["erasure: sequential − at once"] = (
            f"{mine[HEADLINE].mean() - row[f'{HEADLINE}_mean']:+.3f}"
        )
        out.append(line)
    return pd.DataFrame(out)


def sequence_tables(
    results: pd.DataFrame, board: pd.DataFrame
) -> dict[str, dict[str, pd.DataFrame]]:
    """{sequence identity: {table name: table}} for every sequence in `results` (`load_results`),
    whose leaderboard table is `board`."""
    seq_all = sequence_frame(results)
    if seq_all.empty:
        return {}
    out = {}
    for identity, seq in seq_all.groupby("sequence", sort=True):
        name = str(seq["name"].iloc[0])
        tables = {
            "erasure score per step": steps_table(seq, board, name),
            "retention": retention_table(seq),
            "drift": drift_table(seq),
            "cumulative cost": cost_table(seq),
        }
        once = at_once_table(seq, board, name)
        if once is not None:
            tables["sequential vs all at once"] = once
        out[str(identity)] = tables
    return out


def format_sequence_tables(results: pd.DataFrame, board: pd.DataFrame) -> str:
    """Every sequence's tables as markdown ("" when `results` holds no sequence)."""
    parts = []
    for identity, tables in sequence_tables(results, board).items():
        parts.append(f"## {identity}")
        for title, table in tables.items():
            parts += [f"### {title}", table.to_markdown(index=False)]
    return "\n\n".join(parts)


def sequence_plot_png(results: pd.DataFrame, board: pd.DataFrame, identity: str) -> bytes:
    """The erasure score over the steps, one line per method (mean over seeds, min–max band),
    with each step's noise ceiling as a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seq = sequence_frame(results)
    seq = seq[seq["sequence"] == identity]
    name, k = str(seq["name"].iloc[0]), int(seq["steps"].max())
    fig = Figure(figsize=(7.5, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = np.arange(1, k + 1)
    from matplotlib import colormaps

    colours = list(colormaps["tab10"].colors) + list(colormaps["Dark2"].colors)  # type: ignore[attr-defined]
    methods = [m for m in sorted(set(seq["method"])) if not is_oracle(m)]
    for n, method in enumerate(methods):
        g = seq[seq["method"] == method].groupby("step")[HEADLINE]
        mean, lo, hi = (g.mean().reindex(steps), g.min().reindex(steps), g.max().reindex(steps))
        colour = colours[n % len(colours)]
        ax.plot(steps, mean, marker=MARKERS[n % len(MARKERS)], ms=5, color=colour, label=method)
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.10)
    ceiling = []
    for j in steps:
        rows = board[board["task_identity"].str.startswith(f"{name}.{j}@")]
        nc = rows[rows["role"] == "noise ceiling"]
        ceiling.append(nc[f"{HEADLINE}_mean"].iloc[0] if len(nc) else np.nan)
    if np.isfinite(ceiling).any():
        ax.plot(steps, ceiling, ls="--", color="0.3", label="noise ceiling")
    ax.set_xticks(steps)
    ax.set_xlabel("request (step)")
    ax.set_ylabel(f"{HEADLINE} against the step's oracle")
    ax.set_title(f"{identity}: erasure score over sequential requests", fontsize=10)
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, color="0.93", lw=0.6)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_sequence_plots(results: pd.DataFrame, board: pd.DataFrame, out_dir: str | Path):
    """One plot per sequence in `results` under `out_dir` (`<name>-<version>-steps.png`)."""
    seq = sequence_frame(results)
    paths = []
    for identity in sorted(set(seq["sequence"])) if not seq.empty else ():
        path = Path(out_dir) / f"{str(identity).replace('@', '-')}-steps.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, sequence_plot_png(results, board, str(identity)))
        paths.append(path)
    return paths
