"""A tune's selection as a table: per task and method, each trial's mean validation erasure score
(forgetting part / utility part), the chosen trial marked with *.

Usage: python reports/scripts/tune_selection.py TUNE_FOLDER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tabulate import tabulate


def main() -> None:
    sel = json.loads((Path(sys.argv[1]) / "selection.json").read_text())
    seeds = " ".join(str(s) for s in sel["selection_seeds"])
    print(f"budget {sel['budget']}, search seed {sel['search_seed']}, chosen by the mean "
          f"{sel['selection_split']} {sel['selected_by']} of seeds {seeds}")  # fmt: skip
    for task, methods in sorted(sel["tasks"].items()):
        rows = []
        for m, s in sorted(methods.items()):
            row = {"method": m}
            for r in s["trials"]:
                v = r["validation"]
                mark = "*" if r["trial"] == s["chosen"] else ""
                parts = f"{v['forgetting_part']:.2f}/{v['utility_part']:.2f}"
                row[f"trial {r['trial']}"] = f"{mark}{v['erasure_score']:.3f} ({parts})"
            rows.append(row)
        print(f"\n{task}\n")
        print(tabulate(rows, headers="keys", tablefmt="github"))


if __name__ == "__main__":
    main()
