"""How each stage's cost grows from one dataset to the next (`tracer-bench perf --scale TASK...`).

Every task is measured in its own child process (so its peak RSS is its own), stage by stage,
through the harness's own functions: task preparation (rebuilt), item features (computed, not
read from the cache), the tokenizer, one training epoch (with its validation pass), then one
cell's evaluation exactly as a cell runs it — the reference evidence (the original model's and the
oracle's lists, latent ranks and relearning), the method's decode, latent scoring, relearning and
geometry, and the bootstrap of every metric. The model after that one epoch stands in for the base
model, the oracle and the method: decoding and bootstrap costs do not depend on which model it is;
latent scoring prunes by the model's scores, so a trained model may be cheaper or dearer there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

from benchmark.util.memory import peak_rss_mib
from tasks.errors import BenchError

STAGES = (
    "prepare", "features", "tokenizer", "one epoch", "reference evidence", "decode", "latent",
    "relearn", "geometry", "bootstrap",
)  # fmt: skip
EVALUATION = ("decode", "latent", "relearn", "geometry", "bootstrap")


def measure(task_name: str, threads: int) -> dict:
    """Seconds per stage, sizes and peak RSS of one task (run in a child process)."""
    from benchmark.app.cell import cell_metrics
    from benchmark.evaluation.probes import (
        EvalConfig,
        ServedModel,
        evaluate_unlearning,
        make_reference,
    )
    from benchmark.recommender.backbone import set_threads, task_backbone
    from benchmark.recommender.features import compute_features
    from benchmark.recommender.model import SIDRecommender
    from benchmark.recommender.sid import fit_semantic_ids
    from benchmark.recommender.train import seed_everything, train_model
    from tasks import get_task, prepare_task

    set_threads(threads)
    seconds: dict[str, float] = {}

    def timed(stage: str, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[stage] = time.perf_counter() - start
        return out

    task = timed("prepare", prepare_task, get_task(task_name), rebuild=True)
    cfg = task_backbone(task.spec)
    features = timed("features", compute_features, task, cfg.features)
    sids = timed("tokenizer", fit_semantic_ids, features, cfg.sid.for_seed(0))
    seed_everything(0)
    model = SIDRecommender(cfg.model_config(sids.sizes, task.spec.preprocess.max_history))
    one = replace(cfg.train, max_epochs=1)
    timed("one epoch", train_model, model, task, sids.codes, sids.sizes, one, 0, progress=False)
    served = ServedModel(model, sids)
    eval_cfg = EvalConfig(seed=0)
    ref = timed("reference evidence", make_reference, task, served, served, features, eval_cfg)
    frame, _, parts = evaluate_unlearning(task, ref, served, eval_cfg)
    seconds.update(parts)
    timed("bootstrap", cell_metrics, task, frame, eval_cfg)
    return {
        "task": task.spec.identity,
        "users": task.n_users,
        "items": task.n_items,
        "interactions": task.n_interactions,
        "evaluation examples": len(frame),
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def measure_in_child(task_name: str, threads: int) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmark.app.scale", task_name, str(threads)],
        capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise BenchError(f"perf --scale {task_name}: the measuring process failed: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scale_table(rows: list[dict]) -> str:
    """Stages as rows, tasks as columns, each after the first with its growth over the previous
    one beside the growth of users x items."""
    from tabulate import tabulate

    def growth(cur: float, prev: float) -> str:
        return f" ({cur / prev:.1f}x)" if prev > 0 else ""

    header = ["stage"] + [r["task"] for r in rows]
    body = []
    for key in ("users", "items", "interactions", "evaluation examples"):
        body.append([key] + [f"{r[key]:,}" for r in rows])
    ui = [r["users"] * r["items"] for r in rows]
    body.append(["users x items"] + [f"{v:.3g}" + (growth(v, ui[i - 1]) if i else "")
                                     for i, v in enumerate(ui)])  # fmt: skip
    for stage in STAGES:
        cells = []
        for i, r in enumerate(rows):
            s = r["seconds"][stage]
            cells.append(f"{s:.1f} s" + (growth(s, rows[i - 1]["seconds"][stage]) if i else ""))
        body.append([stage] + cells)
    evals = [sum(r["seconds"][s] for s in EVALUATION) for r in rows]
    body.append(["a cell's evaluation"] + [f"{v:.1f} s" + (growth(v, evals[i - 1]) if i else "")
                                           for i, v in enumerate(evals)])  # fmt: skip
    body.append(["peak RSS"] + [f"{r['peak_rss_mib']:.0f} MiB" for r in rows])
    return tabulate(body, headers=header, disable_numparse=True)


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
