"""`tracer-bench train | evaluate | perf`: a task's base model (trained or reused from the cache)
and its quality, and what its stages cost."""

from __future__ import annotations

import argparse
import sys
import time

from tabulate import tabulate

from benchmark.util.memory import peak_rss_mib
from tasks.errors import BenchError

# how training ended (the training log's `stopped_by`)
STOPPED_BY = {
    "max_epochs": " (the epoch cap)",
    "selector": " (stopped: validation significantly below its best)",
    "plateau": " (stopped: lr halvings without a new best)",
}


def _metrics_table(rows: dict[str, dict], ks: tuple[int, ...]) -> str:
    headers = ["model"] + [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    body = [[name] + [f"{r[h]:.4f}" if h in r else "-" for h in headers[1:]]
            for name, r in rows.items()]  # fmt: skip
    return tabulate(body, headers=headers, disable_numparse=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from benchmark.recommender.backbone import (
        evaluate_backbone,
        get_backbone,
        popularity_metrics,
        set_threads,
        task_backbone,
    )
    from tasks import get_task, prepare_task

    set_threads(args.threads)
    spec = get_task(args.task)
    recipe = task_backbone(spec)
    task = prepare_task(spec)
    start = time.perf_counter()
    backbone, reused = get_backbone(task, recipe, args.seed, progress=not args.quiet)
    seconds = time.perf_counter() - start
    ks = task.spec.k_values
    log = backbone.log
    print(f"task {task.spec.identity} (data {task.content_hash[:12]}), seed {args.seed}")
    stopped = STOPPED_BY.get(log.get("stopped_by", ""), "")
    print(
        f"base model: {'reused from cache' if reused else 'trained'} at {backbone.folder}\n"
        f"training time {log['total_seconds']:.1f} s ({log['total_seconds'] / 60:.1f} min), "
        f"{len(log['epochs'])} epochs{stopped}, "
        f"best validation NDCG@10 {log['best_valid_ndcg@10']:.4f}"
        + (f", kept epoch {log['kept_epoch']}" if "kept_epoch" in log else "")
        + (f" (epochs compared on {log['valid_users']} validation users)"
           if "valid_users" in log else "")
        + ("" if not reused else f" (this command: {seconds:.1f} s)")
    )  # fmt: skip
    reference = None
    if args.sasrec:  # the recommender a user would pick instead, on the same split
        from benchmark.recommender.sasrec import SASRecConfig, evaluate_sasrec, train_sasrec

        reference, slog = train_sasrec(task, SASRecConfig(), args.seed)
        print(f"SASRec reference: trained in {slog['seconds']:.1f} s, kept epoch "
              f"{slog['kept_epoch']} of {len(slog['epochs'])}")  # fmt: skip
    rows = {}
    for split in ("valid", "test"):
        m = evaluate_backbone(backbone.model, backbone.sids, task, split, args.beam, ks)
        rows[f"{split} (SID model)"] = m
        if reference is not None:
            rows[f"{split} (SASRec)"] = evaluate_sasrec(reference, task, split, ks)
        rows[f"{split} (popularity)"] = popularity_metrics(task, split, ks)
        print(
            f"{split}: decoded {m['users']} targets in {m['decode_seconds']:.2f} s "
            f"(beam {args.beam})"
        )
    from benchmark.app.published import published_rows

    published = published_rows(task.spec)
    rows.update({f"test ({name})": r for name, r in published.items()})
    print(_metrics_table(rows, ks))
    if published:
        print(
            "published rows: the same data and protocol, as their paper reports them ('-': "
            "not given); ours exclude each user's earlier items from the ranking"
        )
    if reference is not None:
        sid, ref = rows["test (SID model)"], rows["test (SASRec)"]
        print(
            "SID model / SASRec on test: "
            + ", ".join(f"{m}@10 {sid[f'{m}@10'] / ref[f'{m}@10']:.3f}" for m in ("recall", "ndcg"))
        )
    print(f"peak RSS of this command: {peak_rss_mib():.0f} MiB")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark.recommender.backbone import (
        backbone_dir,
        evaluate_backbone,
        load_backbone,
        popularity_metrics,
        set_threads,
        task_backbone,
    )
    from tasks import get_task, prepare_task

    set_threads(args.threads)
    task = prepare_task(get_task(args.task))
    folder = backbone_dir(task, task_backbone(task.spec), args.seed)
    if not (folder / "config.json").exists():
        raise BenchError(
            f"no trained base model for {task.spec.identity} seed {args.seed}; run "
            f"`tracer-bench train --task {args.task} --seed {args.seed}` first"
        )
    backbone = load_backbone(folder)
    ks = task.spec.k_values
    m = evaluate_backbone(backbone.model, backbone.sids, task, args.split, args.beam, ks)
    print(
        f"{args.split}: decoded {m['users']} targets in {m['decode_seconds']:.2f} s "
        f"(beam {args.beam})"
    )
    print(
        _metrics_table({"SID model": m, "popularity": popularity_metrics(task, args.split, ks)}, ks)
    )
    return 0


def _cmd_perf(args: argparse.Namespace) -> int:
    if args.scale:
        from benchmark.app.scale import measure_in_child, scale_table

        rows = []
        for name in args.scale:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            rows.append(measure_in_child(name, args.threads))
        print(
            f"each stage once, {args.threads} thread(s) per task (benchmark/app/scale.py says what "
            "each stage is); in brackets: the growth over the previous task"
        )
        print(scale_table(rows))
        return 0
    if args.breakdown:
        from benchmark.app.breakdown import breakdown, format_breakdown
        from benchmark.app.perf import matmul_gflops
        from benchmark.recommender.backbone import set_threads

        rows = breakdown(args.breakdown)
        set_threads(args.threads)
        print(
            f"where the time of the run in {args.breakdown} went (seconds of work, summed over "
            "processes: steps of parallel processes overlap in wall time)"
        )
        print(format_breakdown(rows, matmul_gflops(), args.threads))
        return 0
    from benchmark.app.perf import print_perf_table, run_perf
    from benchmark.recommender.backbone import task_backbone
    from benchmark.recommender.features import item_features
    from benchmark.recommender.sid import fit_semantic_ids
    from tasks import get_task, prepare_task

    task = prepare_task(get_task(args.task))
    cfg = task_backbone(task.spec)
    sids = fit_semantic_ids(item_features(task, cfg.features), cfg.sid)
    model_cfg = cfg.model_config(sids.sizes, task.spec.preprocess.max_history)
    start = time.perf_counter()
    rows = run_perf(
        task,
        sids.codes,
        sids.sizes,
        model_cfg,
        batches=args.batches,
        seed=0,
        threads=args.threads,
        progress=not args.quiet,
    )
    print(
        f"task {task.spec.identity}, model d_model {model_cfg.d_model}, "
        f"{model_cfg.n_enc_layers}+{model_cfg.n_dec_layers} layers, {model_cfg.n_heads} heads, "
        f"d_ff {model_cfg.d_ff}; {time.perf_counter() - start:.0f} s"
    )
    print_perf_table(rows)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    for name, func, text in (
        ("train", _cmd_train, "train (or reuse the cached) base model of a task and evaluate it"),
        ("evaluate", _cmd_evaluate, "evaluate the cached base model of a task"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--task", required=True, help="standard task name or task .toml path")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--beam", type=int, default=20, help="beam width (>= the largest K)")
        p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
        if name == "train":
            p.add_argument("--quiet", action="store_true", help="no progress bars")
            p.add_argument(
                "--sasrec",
                action="store_true",
                help="also train and show a SASRec reference on the same split "
                "(1-2 min on one core)",
            )
        else:
            p.add_argument("--split", choices=("valid", "test"), default="test")
        p.set_defaults(func=func)

    p = sub.add_parser("perf", help="speed and memory against a Hugging Face T5 of the same size")
    p.add_argument("--task", default="ml100k-horror")
    p.add_argument("--batches", type=int, default=3, help="timed training batches")
    p.add_argument(
        "--breakdown",
        metavar="RESULTS",
        help="instead: where a run's time went (base, oracle, unlearning, evaluation parts), "
        "from the costs its results recorded, beside this machine's matmul peak",
    )
    p.add_argument(
        "--scale",
        nargs="+",
        metavar="TASK",
        help="instead: each stage's cost (preparation, features, tokenizer, one epoch, reference "
        "evidence, a cell's evaluation parts) and peak RSS per task, side by side",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_perf)
