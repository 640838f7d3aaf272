"""Two boards of the same tasks side by side, per method: significance rank and erasure score on
each (e.g. the defaults board and `tracer-bench tune`'s tuned board), with the tuned board's
chosen trial and its overrides.

Usage: python reports/scripts/board_ranks.py DEFAULTS_FOLDER TUNED_FOLDER
Prints a markdown table.
"""

from __future__ import annotations

import sys

from tabulate import tabulate

from benchmark.results.record import ResultRecord
from leaderboard.table import leaderboard_table, load_results


def board(folder: str):
    table = leaderboard_table(load_results(folder))
    return {(r.task_identity, r.method): r for r in table.itertuples()}


def chosen(folder: str) -> dict:
    """(task identity, method) -> the tuning block of its first record."""
    df = load_results(folder)
    out = {}
    for row in df.itertuples():
        out.setdefault((row.task_identity, row.method), ResultRecord.read(row.path).tuning or {})
    return out


def main() -> None:
    a, b = board(sys.argv[1]), board(sys.argv[2])
    tuning = chosen(sys.argv[2])
    rows = []
    for key in sorted(set(a) | set(b), key=lambda k: (k[0], b[k].rank if k in b else 99)):
        ra, rb, t = a.get(key), b.get(key), tuning.get(key, {})
        overrides = ", ".join(f"{k}={v}" for k, v in sorted(t.get("overrides", {}).items()))
        how = "—" if not t.get("searched") and not t.get("tuned_as") else (
            f"trial {t['chosen_trial']}" + (f" (as {t['tuned_as']})" if t.get("tuned_as") else "")
        )  # fmt: skip
        rows.append({
            "task": key[0], "method": key[1],
            "rank defaults": ra.rank if ra is not None else None,
            "rank tuned": rb.rank if rb is not None else None,
            "erasure defaults": ra.erasure_score_mean if ra is not None else None,
            "erasure tuned": rb.erasure_score_mean if rb is not None else None,
            "forgetting tuned": rb.forgetting_part_mean if rb is not None else None,
            "utility tuned": rb.utility_part_mean if rb is not None else None,
            "chosen": how, "overrides": overrides or "defaults",
        })  # fmt: skip
    print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3f"))


if __name__ == "__main__":
    main()
