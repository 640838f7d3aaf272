"""Backbone variants for issue 13, chosen on validation targets (test rows computed for the
report only): `python reports/scripts/backbone_variants.py VARIANT [SEED]` trains one variant of
the base model of ml100k-horror@2.0 on one thread (not cached) and prints one JSON line with its
training seconds, kept epoch and Recall@10 / NDCG@10 on validation and test targets at beam 20
and 50.
VARIANT: `default`, `previous` or overrides such as `previous,sid.levels=2` (see `variant`).

`--task NAME` trains that task's base model instead, starting from the task's own recipe
(`default` is then that recipe), and decodes at beam 20 only; the row also carries the stopping
reason, the number of validation users epochs were compared on and the per-epoch curve.

`--selection` trains and evaluates on the task's selection view instead
(`tasks.prepare.selection_view`: every sequence cut at its validation target and split again),
whose 5 targets per user mirror the test targets without touching them; the row's `sel_valid` and
`sel_test` are that view's validation and test metrics at beam 20, and no real test target is
decoded."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from benchmark import __version__
from benchmark.recommender.backbone import (
    BackboneConfig,
    evaluate_backbone,
    task_backbone,
    train_backbone,
)
from tasks import get_task, prepare_task
from tasks.prepare import selection_view

# named starting points, so that the rows of reports/backbone-tuning-cpu.md measured against them
# stay reproducible: "release-0.5", the default of harnesses 0.4.0-0.5.1 and 0.6.1 (SVD features,
# no label smoothing; the rows marked with those harnesses name it `default`); "release-0.2",
# harness 0.2's default (2+2 layers, 12 epochs); "previous", the recipe before issue 13
# (text-heavy features, lr 3e-3, batches of 64, 2+2 layers, 12 epochs)
RELEASE_05 = ""  # was "train.label_smoothing=0.0": the default since label smoothing was withdrawn
RELEASE_02 = RELEASE_05 + ",arch.n_dec_layers=2,train.max_epochs=12"
NAMED = {
    "previous": RELEASE_02
    + ",features.collab_dim=32,features.collab_weight=0.5,train.lr=0.003,train.batch_size=64",
    "release-0.2": RELEASE_02,
    "release-0.5": RELEASE_05,
}


def variant(name: str, base: BackboneConfig | None = None) -> BackboneConfig:
    """`default`, a NAMED recipe, or comma-separated section.field=value overrides of the default
    (after a leading name, overrides of that recipe), e.g. `previous,train.max_epochs=20`;
    `base` replaces the default."""
    items = [x for x in name.split(",") if x and x != "default"]
    if items[:1] and items[0] in NAMED:
        items = [x for x in NAMED[items[0]].split(",") if x] + items[1:]
    return with_overrides(base or BackboneConfig(), items)


def with_overrides(cfg, items: list[str]):
    """A frozen config dataclass with `path.to.field=value` overrides applied, each value typed
    like the field it replaces (also used by reports/scripts/sasrec_variants.py)."""
    for item in items:
        key, _, value = item.partition("=")
        cfg = _replace_path(cfg, key.split("."), value)
    return cfg


def _replace_path(obj, path: list[str], value: str):
    head, rest = path[0], path[1:]
    current = getattr(obj, head)
    if rest:
        new = _replace_path(current, rest, value)
    else:  # a None default (sid.seed: the run's seed) takes an int
        new = int(value) if current is None else type(current)(value)
    return replace(obj, **{head: new})


def main(name: str, seed: int, selection: bool = False, task_name: str | None = None) -> None:
    torch.set_num_threads(1)
    spec = get_task(task_name or "ml100k-horror")
    task = prepare_task(spec)
    if selection:
        task = selection_view(task)
    recipe = variant(name, task_backbone(spec) if task_name else None)
    start = time.perf_counter()
    model, sids, log = train_backbone(task, recipe, seed, progress=task_name is not None)
    row = {"variant": name, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1),
           "kept_epoch": log["kept_epoch"], "harness": __version__}  # fmt: skip
    if selection or task_name:
        row["task"] = task.spec.identity
    if task_name:
        row |= {"epochs": len(log["epochs"]), "stopped_by": log["stopped_by"],
                "valid_users": log["valid_users"], "backbone": recipe.config_hash()[:12],
                "curve": [[e["epoch"], round(e["ndcg@10"], 4), round(e["seconds"])]
                          for e in log["epochs"]]}  # fmt: skip
    for split in ("valid", "test"):
        for beam in (20,) if selection or task_name else (20, 50):
            m = evaluate_backbone(model, sids, task, split, beam, (10,))
            key = f"sel_{split}" if selection else f"{split}_b{beam}"
            row[key] = [round(m["recall@10"], 4), round(m["ndcg@10"], 4)]
    print(json.dumps(row), flush=True)


def variant_args(argv: list[str]) -> tuple[str, int, bool, str | None]:
    """(VARIANT, SEED, --selection given, --task's value) from
    `VARIANT [SEED] [--selection] [--task NAME]`."""
    task = None
    if "--task" in argv:
        at = argv.index("--task")
        task, argv = argv[at + 1], argv[:at] + argv[at + 2 :]
    args = [a for a in argv if a != "--selection"]
    return args[0], int(args[1]) if len(args) > 1 else 0, "--selection" in argv, task


if __name__ == "__main__":
    main(*variant_args(sys.argv[1:]))
