"""Select TRACER's defaults on validation targets only (DESIGN §4, protocol 2.0).

Runs each variant on each (task, seed) with the evaluation pools built from every user's
validation target (EvalConfig(split="valid")). Appends one JSON line per cell to OUT.jsonl.
`--best OUT.jsonl` prints the `--config` flags of the variant with the highest mean validation
erasure score (for `tracer-bench run`); it reads validation rows only. SPLIT "test" computes the
same variants on test targets for the report, after the choice: never used to choose.

Usage: python reports/scripts/tune_tracer.py OUT.jsonl TASK[,TASK...] SEED[,SEED...] [valid|test]
           [VARIANT,...|ablation] [FIELD=VALUE,...]
       (the last argument: overrides under every variant, e.g. a tuned configuration)
       python reports/scripts/tune_tracer.py --best OUT.jsonl
       python reports/scripts/tune_tracer.py --table OUT.jsonl [valid|test]
       (mean per task and variant over seeds, and each variant's change from TRACER 1.2's
       defaults, `forget3`, where it was run)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

# overrides of TRACER's defaults: the 1.2-era variants switch 1.3's forget-only closing off
# (V12); "default" is TRACER 1.1's configuration, the starting point of the protocol 2.0
# selection, and "forget3" the one it chose (1.2's defaults)
V12 = {"forget_only_weight": 0.0}
VARIANTS_12 = {
    "default": {"forget_weight": 1.0},
    "steps100": {"steps": 100, "forget_weight": 1.0},
    "forget3": {},
    "path3": {"path_weight": 3.0, "forget_weight": 1.0},
    "lr1e-3": {"lr": 1e-3, "forget_weight": 1.0},
    "steps100-forget3-path3": {"steps": 100, "path_weight": 3.0},
    # cheaper variants of 1.2 (the quick-suite budget: unlearning <= 1/10 of the oracle's time)
    "retain32": {"retain_batch": 32},
    "steps35": {"steps": 35},
    # the ablation of TRACER's parts (issue 30): each part switched off alone
    "no-reassign": {"reassign": False},
    "no-forget": {"forget_weight": 0.0},
    "no-path": {"path_weight": 0.0},
    "no-retain": {"retain_weight": 0.0},
    "no-coherence": {"coherence_weight": 0.0},
}
# the TRACER 1.3 selection (issue 46): the forget-only closing at three weights, without the
# coherence term or the KL closing, and on the configuration 1.2's tune chose (its trial 1)
SEARCH_12 = Path("reports/cpu-tune-ml100k/search.json")  # 1.2's tune: its search, kept
TRIAL1_12 = json.loads(SEARCH_12.read_text())["trials"]["tracer"][1]
VARIANTS_13 = {
    "fo0.1": {"forget_only_weight": 0.1},
    "fo0.3": {"forget_only_weight": 0.3},
    "fo1": {"forget_only_weight": 1.0},
    "fo1-nocoh": {"forget_only_weight": 1.0, "coherence_weight": 0.0},
    "fo0.3-nocoh": {"forget_only_weight": 0.3, "coherence_weight": 0.0},
    "fo3": {"forget_only_weight": 3.0},
    "fo10": {"forget_only_weight": 10.0},
    "fo3-nocoh": {"forget_only_weight": 3.0, "coherence_weight": 0.0},
    "fo3-nopath": {"forget_only_weight": 3.0, "path_weight": 0.0},
    "trial1": {**TRIAL1_12, "forget_only_weight": 0.0},
    "trial1-fo3": {**TRIAL1_12, "forget_only_weight": 3.0},
    "trial1-fo1": {**TRIAL1_12, "forget_only_weight": 1.0},
}
VARIANTS = {**{k: {**V12, **v} for k, v in VARIANTS_12.items()}, **VARIANTS_13}
ABLATION = ("forget3", "no-reassign", "no-forget", "no-path", "no-retain", "no-coherence")
KEYS = ("erasure_score", "forgetting_part", "utility_part", "served_forgetting", "oracle_match",
        "latent_forget_mean_rank", "oracle_latent_forget_mean_rank")  # fmt: skip


def best(path: str) -> tuple[str, float]:
    """The variant with the highest mean validation erasure score over the (task, seed) cells
    every variant in the file was run on (a variant missing one of them is not a candidate)."""
    scores: dict[str, dict] = defaultdict(dict)
    for line in open(path):
        row = json.loads(line)
        if row["split"] == "valid":
            scores[row["variant"]][row["task"], row["seed"]] = row["erasure_score"]
    cells = set().union(*(set(s) for s in scores.values()))
    whole = {v: sum(s.values()) / len(s) for v, s in scores.items() if set(s) == cells}
    name = max(whole, key=lambda v: (whole[v], v == "default"))
    return name, whole[name]


def table(path: str, split: str = "valid") -> str:
    from tabulate import tabulate

    cells = defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        if row["split"] == split:
            cells[row["task"], row["variant"]].append(row)
    rows = []
    for (task, variant), got in sorted(cells.items()):
        mean = {k: sum(r[k] for r in got) / len(got) for k in KEYS}
        ref = [r["erasure_score"] for r in cells.get((task, "forget3"), [])]
        out = {"task": task, "variant": variant, "seeds": len(got), **mean}
        if ref:
            out["Δ erasure"] = mean["erasure_score"] - sum(ref) / len(ref)
        rows.append(out)
    return tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3f")


def main() -> None:
    if sys.argv[1] == "--table":
        print(table(sys.argv[2], *sys.argv[3:4]))
        return
    if sys.argv[1] == "--best":
        name, score = best(sys.argv[2])
        print(f"# {name}: mean validation erasure score {score:.4f}", file=sys.stderr)
        ablations = ("tracer", "tracer-noreassign", "tracer-nocoherence")
        print(" ".join(f"--config {m}.{k}={v}" for m in ablations
                       for k, v in VARIANTS[name].items()))  # fmt: skip
        return
    from benchmark.app.cell import CellContext, run_cell
    from benchmark.app.cli.run import parse_method_configs
    from benchmark.evaluation.probes import EvalConfig
    from benchmark.recommender.backbone import BackboneConfig
    from benchmark.recommender.device import configure_device
    from tasks import get_task, prepare_task

    configure_device()
    out, tasks, seeds = (
        sys.argv[1],
        sys.argv[2].split(","),
        [int(s) for s in sys.argv[3].split(",")],
    )
    split = sys.argv[4] if len(sys.argv) > 4 else "valid"
    chosen = sys.argv[5].split(",") if len(sys.argv) > 5 else list(VARIANTS)
    chosen = list(ABLATION) if chosen == ["ablation"] else chosen
    given = sys.argv[6].split(",") if len(sys.argv) > 6 else []
    under = parse_method_configs([f"tracer.{kv}" for kv in given]).get("tracer", {})
    with open(out, "a") as fh:
        for name in tasks:
            task = prepare_task(get_task(name))
            for seed in seeds:
                cfg = EvalConfig(seed=seed, split=split)
                ctx = CellContext(task, seed, BackboneConfig(), cfg, False)
                for variant in chosen:
                    overrides = {**under, **VARIANTS[variant]}
                    cell, _ = run_cell(ctx, "tracer", overrides)
                    row = {
                        "task": name, "seed": seed, "split": split, "variant": variant,
                        "under": under,
                        **{k: cell.metrics[k].value for k in KEYS},
                        "unlearn_seconds": cell.cost.unlearn_seconds,
                        "evaluation_seconds": cell.cost.evaluation_seconds,
                    }  # fmt: skip
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(row, flush=True)


if __name__ == "__main__":
    main()
