"""Are two result folders equal in every metric?
`python reports/scripts/same_metrics.py A B [--common] [--shared-metrics]`

Compares value, ci_low, ci_high and n of every metric of every result JSON, exactly (NaN equals
NaN), leaving out the cost metrics that measure the machine (unlearning seconds, peak memory,
speed-up over retraining), and the base model's and the oracle's checkpoint sha256. Prints the
number of fields compared and each difference; exits 1 when the folders differ (other files,
other metrics or other values), else 0. `--common`: only the result files both folders hold
(a seed-0 run against a committed three-seed folder), at least one. `--shared-metrics`: only the
metrics both records hold (a folder of one protocol against the next one's, which adds metrics).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from benchmark.metrics.registry import COST_METRICS

FIELDS = ("value", "ci_low", "ci_high", "n")
CHECKPOINTS = ("backbone", "oracle")


def results(folder: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(folder)): json.loads(p.read_text())
        for p in sorted(folder.rglob("*.json"))
        if not p.name.endswith(".failed.json")
    }


def checkpoints(record: dict) -> dict[str, str | None]:
    return {part: (record.get(part) or {}).get("checkpoint_sha256") for part in CHECKPOINTS}


def same(x, y) -> bool:
    both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
    return x == y or both_nan


def main(a: Path, b: Path, common: bool = False, shared_metrics: bool = False) -> int:
    ra, rb = results(a), results(b)
    if common:
        ra = {k: v for k, v in ra.items() if k in rb}
        rb = {k: v for k, v in rb.items() if k in ra}
        if not ra:
            print("no result file in both folders")
            return 1
    if ra.keys() != rb.keys():
        print(f"different result files: only in A {sorted(ra.keys() - rb.keys())}, "
              f"only in B {sorted(rb.keys() - ra.keys())}")  # fmt: skip
        return 1
    compared = differ = 0
    for rel, record in ra.items():
        ca, cb = checkpoints(record), checkpoints(rb[rel])
        for part in CHECKPOINTS:
            compared += 1
            if ca[part] != cb[part]:
                differ += 1
                print(f"{rel} {part}.checkpoint_sha256: {ca[part]} != {cb[part]}")
        ma, mb = record["metrics"], rb[rel]["metrics"]
        if shared_metrics:
            ma = {k: v for k, v in ma.items() if k in mb}
            mb = {k: v for k, v in mb.items() if k in ma}
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
    print(f"{len(ra)} result files, {compared} fields compared (metrics and checkpoints), "
          f"{differ} differ")  # fmt: skip
    return 1 if differ else 0


if __name__ == "__main__":
    flags = {"--common", "--shared-metrics"}
    args = [a for a in sys.argv[1:] if a not in flags]
    if len(args) != 2:
        sys.exit("usage: python reports/scripts/same_metrics.py A B [--common] [--shared-metrics]")
    given = set(sys.argv[1:]) & flags
    sys.exit(main(Path(args[0]), Path(args[1]), "--common" in given, "--shared-metrics" in given))
