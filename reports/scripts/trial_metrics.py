"""Any metrics of one method's tune trials: per task and trial, its overrides and the mean over
the selection seeds of each metric named (validation targets).

Usage: python reports/scripts/trial_metrics.py TUNE_FOLDER METHOD METRIC [METRIC ...]
       e.g. ... reports/cpu-tune-ml100k tracer utility_part collateral_ndcg_ratio@10
Prints a markdown table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tabulate import tabulate

from benchmark.results.record import ResultRecord, result_path


def main() -> None:
    out, method, metrics = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    sel = json.loads((out / "selection.json").read_text())
    rows = []
    for task, methods in sorted(sel["tasks"].items()):
        for trial in methods[method]["trials"]:
            k = trial["trial"]
            recs = [ResultRecord.read(result_path(out / "trials" / f"trial{k}", task, method, s))
                    for s in sel["selection_seeds"]]  # fmt: skip
            over = ", ".join(f"{n}={v}" for n, v in sorted(trial["overrides"].items()))
            row = {"task": task, "trial": k, "overrides": over or "defaults"}
            for m in metrics:
                row[m] = sum(float(r.metric(m)) for r in recs) / len(recs)
            rows.append(row)
    print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3f"))


if __name__ == "__main__":
    main()
