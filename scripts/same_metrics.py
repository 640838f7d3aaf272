"""Are two result folders equal in every metric? `python scripts/same_metrics.py A B`

Compares value, ci_low, ci_high and n of every metric of every result JSON, exactly (NaN equals
NaN), leaving out the cost metrics that measure the machine (unlearning seconds, peak memory,
speed-up over retraining). Prints the number of fields compared and each difference; exits 1
when the folders differ (other files, other metrics or other values), else 0.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from benchmark.metrics import COST_METRICS

FIELDS = ("value", "ci_low", "ci_high", "n")


def results(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): json.loads(p.read_text())["metrics"]
        for p in sorted(folder.rglob("*.json"))
        if not p.name.endswith(".failed.json")
    }


def same(x, y) -> bool:
    both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    return x == y or both_nan


def main(a: Path, b: Path) -> int:
    ra, rb = results(a), results(b)
    if ra.keys() != rb.keys():
        print(f"different result files: only in A {sorted(ra.keys() - rb.keys())}, "
              f"only in B {sorted(rb.keys() - ra.keys())}")  # fmt: skip
        return 1
    compared = differ = 0
    for rel, ma in ra.items():
        mb = rb[rel]
        if ma.keys() != mb.keys():
            print(f"{rel}: different metrics {sorted(ma.keys() ^ mb.keys())}")
            differ += 1
            continue
        for name in sorted(ma.keys() - set(COST_METRICS)):
            for f in FIELDS:
                compared += 1
                if not same(ma[name].get(f), mb[name].get(f)):
                    differ += 1
                    print(f"{rel} {name}.{f}: {ma[name].get(f)} != {mb[name].get(f)}")
    print(f"{len(ra)} result files, {compared} metric fields compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/same_metrics.py RESULTS_A RESULTS_B")
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
