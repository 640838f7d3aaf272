"""The two gates a new backbone default must pass besides the selection view (issues 11 and 13;
reports/backbone-tuning-cpu.md, 6e-6g), in one command:
`python reports/scripts/backbone_gates.py VARIANT OUT [--seeds 0 1 2] [--jobs 2] [--reference DIR]`.

It runs the `retrain` and `filter` cells of ml100k-horror@2.0 on the backbone VARIANT (a recipe
of backbone_variants.py, e.g. `default,train.label_smoothing=0.1` with
reports/patches/label-smoothing.diff applied; base models and oracles trained, or read from the
cache) into the results folder OUT, and prints, per seed, the oracle's
and `filter`'s retained NDCG@10 relative to the original model, then the noise ceiling (retrain
scored against another seed's oracle) with its 95 % interval beside the reference folder's
(default: the default backbone's grid, reports/cpu-protocol2-horror), and both verdicts:

- oracle gate: the oracle's ratio is at most 1.05 on every seed (a base model that the oracle
  beats by more is not converged);
- noise ceiling: the candidate's mean is not below the reference's 95 % interval (a backbone on
  which two retrains agree less leaves the benchmark less room to separate methods).

Exit status 0 when both hold, 1 when either fails."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backbone_variants import variant

from benchmark.app.runner import run_grid
from leaderboard.table import leaderboard_table, load_results

ORACLE_GATE = 1.05
TASK = "ml100k-horror"


def ceiling(folder: Path, backbone: str | None = None) -> tuple[float, float, float, str]:
    """(mean, lo, hi, backbone hash) of the noise-ceiling row of a results folder (of the given
    backbone's results, when the folder holds several)."""
    table = leaderboard_table(load_results(folder))
    rows = table[table["role"] == "noise ceiling"]
    if backbone is not None:
        rows = rows[rows["backbone_hash"] == backbone]
    if len(rows) != 1:
        raise SystemExit(f"{folder}: no single noise-ceiling row (needs retrain on 2+ seeds)")
    r = rows.iloc[0]
    lo, hi = r["erasure_score_lo"], r["erasure_score_hi"]
    return r["erasure_score_mean"], lo, hi, r["backbone_hash"][:12]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variant")
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--reference", type=Path, default=Path(__file__).parents[1]
                   / "cpu-protocol2-horror")  # fmt: skip
    args = p.parse_args(argv)
    if len(args.seeds) < 2:
        p.error("the noise ceiling needs at least 2 seeds")
    cfg = variant(args.variant)
    run_grid([TASK], ["retrain", "filter"], args.seeds, args.out, backbone=cfg, jobs=args.jobs)

    backbone = cfg.config_hash()
    runs = load_results(args.out)
    runs = runs[runs["backbone_hash"] == backbone]
    ratio = runs.pivot_table(index="seed", columns="method", values="retained_ndcg_ratio@10")
    print(f"\n{args.variant} (backbone {backbone[:12]}), retained NDCG@10 / original:")
    print(ratio.loc[args.seeds, ["retrain", "filter"]].to_string(float_format="{:.3f}".format))
    mean, lo, hi, _ = ceiling(args.out, backbone)
    ref_mean, ref_lo, ref_hi, ref_hash = ceiling(args.reference)
    print(f"noise ceiling {mean:.3f} [{lo:.3f}, {hi:.3f}]; reference {ref_mean:.3f} "
          f"[{ref_lo:.3f}, {ref_hi:.3f}] (backbone {ref_hash}, {args.reference})")  # fmt: skip
    gate = bool((ratio["retrain"] <= ORACLE_GATE).all())
    kept = bool(mean >= ref_lo)
    print(f"oracle gate (<= {ORACLE_GATE} on every seed): {'pass' if gate else 'FAIL'}")
    print(f"noise ceiling kept (mean >= reference's lower bound): {'pass' if kept else 'FAIL'}")
    return 0 if gate and kept else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
