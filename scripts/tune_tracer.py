"""TRACER variants on validation users (selection) and test users (report), per (task, seed).

Choose on the mean validation erasure score only; the test numbers are printed for the report.
Usage: python scripts/tune_tracer.py OUT.jsonl TASK[,TASK...] SEED[,SEED...]
"""

from __future__ import annotations

import json
import sys

from benchmark.backbone import BackboneConfig
from benchmark.cell import CellContext, run_cell
from benchmark.device import configure_device
from benchmark.evaluation import EvalConfig
from tasks import get_task, prepare_task

VARIANTS = {
    "default": {},
    "steps50": {"steps": 50},
    "retain64": {"retain_batch": 64},
    "lr2.5e-4": {"lr": 2.5e-4},
    "path0.3": {"path_weight": 0.3},
    "steps50-retain64": {"steps": 50, "retain_batch": 64},
}
KEYS = ("erasure_score", "utility_part", "forgetting_part", "fe@10", "fe_latent@10", "ce@10")


def main() -> None:
    configure_device()
    out, tasks, seeds = (
        sys.argv[1],
        sys.argv[2].split(","),
        [int(s) for s in sys.argv[3].split(",")],
    )
    with open(out, "a") as fh:
        for name in tasks:
            task = prepare_task(get_task(name))
            for seed in seeds:
                for split in ("valid", "test"):
                    ctx = CellContext(
                        task, seed, BackboneConfig(), EvalConfig(seed=seed, split=split), False
                    )
                    for variant, overrides in VARIANTS.items():
                        cell = run_cell(ctx, "tracer", overrides)
                        row = {
                            "task": name,
                            "seed": seed,
                            "split": split,
                            "variant": variant,
                            **{k: cell["metrics"][k]["value"] for k in KEYS},
                            "unlearn_seconds": cell["cost"]["unlearn_seconds"],
                            "retrain_seconds": cell["cost"]["retrain_seconds"],
                        }
                        fh.write(json.dumps(row) + "\n")
                        fh.flush()
                        print(row, flush=True)


if __name__ == "__main__":
    main()
