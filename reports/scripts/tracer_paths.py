"""Where the forget items' likelihood stays after unlearning (issue 30): on the forget-set
examples whose latent ranks the evaluation measures (D_f, never evaluation targets), each model's
latent rank of the target under its served SIDs alone and under the better of its original and
served SIDs, and, level by level along the target's original SID, the probability the model gives
the original code (teacher-forced: the mass left on the original path), with the mean
log-probability of the whole original and the whole served SID.

Usage: python reports/scripts/tracer_paths.py TASK SEED [METHOD[:FIELD=VALUE,...] ...]
       (default methods: tracer npo; the base model is always the first row)
Prints a markdown table.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from tabulate import tabulate

from benchmark.app.cell import CellContext
from benchmark.app.cli.run import parse_method_configs
from benchmark.evaluation.probes import EvalConfig, latent_ranks, make_pools
from benchmark.recommender.backbone import task_backbone
from benchmark.recommender.data import histories, to_codes
from benchmark.recommender.device import configure_device
from methods.registry import get_method
from tasks import get_task, prepare_task


def parse(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    given = [f"{name}.{kv}" for kv in filter(None, rest.split(","))]
    return name, parse_method_configs(given).get(name, {})


@torch.no_grad()
def path_mass(task, model, served, orig, positions) -> np.ndarray:
    """(examples, levels): p(original code at level l | history, original prefix)."""
    hist, lengths = histories(task, positions)
    out = []
    for s in range(0, len(positions), 256):
        sl = slice(s, s + 256)
        memory, mask = model.encode_histories(
            to_codes(hist[sl], served), torch.as_tensor(lengths[sl])
        )
        y = orig[torch.as_tensor(task.seq_items[positions[sl]])]
        logits = model.decode_targets(memory, mask, y)
        out.append(torch.stack([
            torch.softmax(lg, -1).gather(1, y[:, lv : lv + 1])[:, 0]
            for lv, lg in enumerate(logits)
        ], 1))  # fmt: skip
    return torch.cat(out).numpy()


def row(label, task, model, served_sids, orig_sids, positions) -> dict:
    served, orig = served_sids.codes, orig_sids.codes
    sizes = served_sids.sizes
    fresh = latent_ranks(task, model, [served], sizes, positions)
    best = latent_ranks(task, model, [orig, served], sizes, positions)
    mass = path_mass(task, model, torch.tensor(served), torch.tensor(orig), positions)
    out = {"model": label, "rank, served SIDs": fresh.mean(), "rank, best of both": best.mean()}
    for lv in range(mass.shape[1]):
        out[f"p(orig code) L{lv + 1}"] = mass[:, lv].mean()
    out["log p(orig SID)"] = np.log(mass.clip(1e-30)).sum(1).mean()
    own = path_mass(task, model, torch.tensor(served), torch.tensor(served), positions)
    out["log p(served SID)"] = np.log(own.clip(1e-30)).sum(1).mean()
    return out


def main() -> None:
    configure_device()
    task = prepare_task(get_task(sys.argv[1]))
    seed = int(sys.argv[2])
    specs = sys.argv[3:] or ["tracer", "npo"]
    ctx = CellContext(task, seed, task_backbone(task.spec), EvalConfig(seed=seed), False)
    base = ctx.base()
    pools = make_pools(task, base.sids, "test", ctx.eval_cfg.latent_sample)
    positions = pools.forget_set_pos[pools.latent_rows]
    rows = [row("base model", task, base.model, base.sids, base.sids, positions)]
    orc = ctx.oracle()  # its own tokenizer: its "original" SIDs are its own
    rows.append(row("retrain oracle (own SIDs)", task, orc.model, orc.sids, orc.sids, positions))
    for spec in specs:
        name, overrides = parse(spec)
        unl = get_method(name)(**overrides).unlearn(ctx.inputs())
        rows.append(row(spec, task, unl.model, unl.sids, base.sids, positions))
    print(f"{task.spec.identity}, seed {seed}, {len(positions)} forget-set examples")
    print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4g"))


if __name__ == "__main__":
    main()
