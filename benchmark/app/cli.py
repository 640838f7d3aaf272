"""The `tracer-bench` command. Bad input ends with one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from tabulate import tabulate

from benchmark import __version__
from benchmark.app.hubcli import add_parsers as add_hub_parsers
from benchmark.recommender.device import configure_device
from benchmark.util.memory import peak_rss_mib
from leaderboard.cli import add_parsers as add_leaderboard_parsers
from tasks.errors import BenchError
from tasks.registry import SUITES


def _cmd_tasks_list(args: argparse.Namespace) -> int:
    from tasks.registry import standard_tasks

    rows = [
        [s.name, s.version, s.dataset.source, s.concept.label, s.description]
        for s in standard_tasks().values()
    ]
    print(
        tabulate(
            rows,
            headers=["task", "version", "source", "concept", "description"],
            disable_numparse=True,
        )
    )
    return 0


def _cmd_tasks_concepts(args: argparse.Namespace) -> int:
    from tasks.concepts import dataset_concepts

    lines = dataset_concepts(args.target, args.separator or "", args.depth)
    print("\n".join(lines))
    return 0


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(tabulate(list(summary.items()), headers=["field", "value"], disable_numparse=True))


def _cmd_tasks_show(args: argparse.Namespace) -> int:
    from benchmark.recommender.backbone import task_backbone
    from tasks import get_task, prepare_task

    spec = get_task(args.task)
    recipe = task_backbone(spec)  # a bad [backbone] table fails before the data is read
    summary = prepare_task(spec).summary()
    departures = [f"{p}.{k} = {v}" for p, t in spec.backbone.items() for k, v in t.items()]
    summary["base recipe"] = f"{recipe.config_hash()[:12]}: harness default" + (
        " with " + ", ".join(departures) if departures else ""
    )
    _print_summary(summary, args.json)
    return 0


def _cmd_tasks_prepare(args: argparse.Namespace) -> int:
    from tasks import get_task, prepare_task

    start = time.perf_counter()
    task = prepare_task(get_task(args.task), rebuild=args.rebuild)
    _print_summary(task.summary(), args.json)
    print(f"prepared in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


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
    print(
        f"base model: {'reused from cache' if reused else 'trained'} at {backbone.folder}\n"
        f"training time {log['total_seconds']:.1f} s, {len(log['epochs'])} epochs, "
        f"best validation NDCG@10 {log['best_valid_ndcg@10']:.4f}"
        + (f", kept epoch {log['kept_epoch']}" if "kept_epoch" in log else "")
        + ("" if not reused else f" (this command: {seconds:.1f} s)")
    )
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


def _cmd_unlearn(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.app.cell import CellContext, run_cell
    from benchmark.evaluation.probes import task_protocol
    from benchmark.metrics.registry import higher_is_better
    from benchmark.recommender.backbone import set_threads, task_backbone
    from benchmark.results.write import save_result
    from methods.registry import get_method
    from tasks import get_task, prepare_task

    set_threads(args.threads)
    get_method(args.method)  # fail fast on an unknown name
    spec = get_task(args.task)
    recipe = task_backbone(spec)
    task = prepare_task(spec)
    ctx = CellContext(task, args.seed, recipe, task_protocol(spec, args.seed),
                      progress=not args.quiet)  # fmt: skip
    cell = run_cell(ctx, args.method)
    rows = []
    for name, s in cell["metrics"].items():
        arrow = "↑" if higher_is_better(name) else "↓"
        ci = "" if s["ci_low"] != s["ci_low"] else f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]"
        rows.append([name, arrow, f"{s['value']:.4f}", ci, s["n"]])
    print(
        f"task {task.spec.identity} (data {task.content_hash[:12]}), method {args.method}, "
        f"seed {args.seed}"
    )
    print(tabulate(rows, headers=["metric", "", "value", "95% CI", "n"], disable_numparse=True))
    if args.output:
        save_result(Path(args.output), ctx, cell)
        print(f"wrote {args.output} and its evidence parquet")
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


def parse_method_configs(specs: list[str]) -> dict[str, dict]:
    """["tracer.steps=100", ...] -> {"tracer": {"steps": 100}}, typed by the method's Config."""
    import dataclasses

    from methods.registry import get_method

    out: dict[str, dict] = {}
    for spec in specs:
        key, eq, raw = spec.partition("=")
        method, dot, name = key.partition(".")
        if not (eq and dot and method and name):
            raise BenchError(f"--config {spec!r}: want METHOD.FIELD=VALUE, e.g. tracer.steps=100")
        fields = {f.name: f for f in dataclasses.fields(get_method(method).Config)}
        if name not in fields:
            raise BenchError(
                f"--config {spec!r}: {method} has no field {name!r} (fields: "
                f"{', '.join(fields) or 'none'})"
            )
        kind = type(getattr(get_method(method).Config(), name))
        try:
            value = (raw.lower() in ("1", "true", "yes")) if kind is bool else kind(raw)
        except ValueError:
            raise BenchError(f"--config {spec!r}: {raw!r} is not a {kind.__name__}") from None
        out.setdefault(method, {})[name] = value
    return out


DASK_OPTIONS = ("scheduler", "cluster", "cluster_config", "resources")


def _executor(args: argparse.Namespace):
    """The executor the options name, as a context manager (None: the local one), with every
    option checked before anything starts."""
    from contextlib import nullcontext

    given = [f"--{o.replace('_', '-')}" for o in DASK_OPTIONS if getattr(args, o) is not None]
    if args.executor == "local":
        if given:
            raise BenchError(f"{given[0]} needs --executor dask")
        return nullcontext(None)
    if args.jobs is not None and args.jobs > 1:
        raise BenchError("--jobs is the local executor's: with --executor dask, --cluster local:N")
    from benchmark.app.clusters import dask_executor, parse_cluster, parse_resources

    if args.cluster:
        parse_cluster(args.cluster)
    resources = parse_resources(args.resources) if args.resources else None
    return dask_executor(args.scheduler, args.cluster, args.cluster_config, resources)


def _workers_line(workers: dict[str, int]) -> str:
    if not workers:
        return "workers: none (nothing to run)"
    return "workers: " + ", ".join(
        f"{w} ({n} group{'s' * (n != 1)})" for w, n in sorted(workers.items())
    )


def _grid_setup(args: argparse.Namespace):
    """Checks the grid options, sets the jobs and threads; returns the executor's context."""
    from benchmark.recommender.backbone import set_threads

    if args.jobs is not None and args.jobs < 1:
        raise BenchError(f"--jobs must be at least 1, got {args.jobs}")
    executor = _executor(args)
    if args.jobs is None:  # two single-threaded workers beat one two-threaded one (the models
        from benchmark.app.executors import usable_cores  # are small): reports/profile-cpu.md

        args.jobs = 1 if args.threads else min(2, usable_cores())
    set_threads(args.threads)
    return executor


def _cmd_tune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.app.tune import tune
    from leaderboard.table import COMPACT_METRICS, format_table, leaderboard_table, load_results
    from methods.registry import available_methods

    executor = _grid_setup(args)
    methods = args.methods or sorted(available_methods())
    start = time.perf_counter()
    with executor as chosen:
        got = tune(
            args.tasks, methods, args.seeds, Path(args.out), args.budget, args.selection_seeds,
            args.search_seed, progress=not args.quiet, jobs=args.jobs, executor=chosen,
        )  # fmt: skip
    wall = time.perf_counter() - start
    board = Path(args.out) / "board"
    if any(board.rglob("seed*.json")):
        print(format_table(leaderboard_table(load_results(board)), "md", COMPACT_METRICS))
    trials, cells = got["trials"], got["board"]
    print(
        f"tune: trials {trials['done']} run, {trials['skipped']} already done, "
        f"{trials['failed']} failed; board {cells['done']} run, {cells['skipped']} already "
        f"done, {cells['failed']} failed; {wall:.0f} s wall ({wall / 60:.1f} min)"
    )
    return 1 if trials["failed"] or cells["failed"] else 0


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from benchmark.app.runner import run_grid
    from methods.registry import available_methods
    from tasks.registry import QUICK_TASK, suite

    executor = _grid_setup(args)
    tasks, seeds = suite(args.suite) if args.suite else ([QUICK_TASK], [0])
    tasks, seeds = args.tasks or tasks, args.seeds or seeds
    methods = args.methods or sorted(available_methods())
    out = Path(args.out)
    start = time.perf_counter()
    with executor as chosen:
        counts = run_grid(
            tasks, methods, seeds, out, args.overwrite, progress=not args.quiet, jobs=args.jobs,
            method_configs=parse_method_configs(args.config), save_artifacts=args.save_artifacts,
            executor=chosen,
        )  # fmt: skip
    wall = time.perf_counter() - start
    children = peak_rss_mib(children=True)
    if not args.no_leaderboard and any(out.rglob("seed*.json")):
        from leaderboard.table import (
            COMPACT_METRICS,
            format_table,
            leaderboard_table,
            load_results,
        )

        print(format_table(leaderboard_table(load_results(out)), "md", COMPACT_METRICS))
    evals = counts["evaluation_seconds"]
    if evals:
        slowest = max(evals, key=evals.get)
        print(
            f"evaluation per cell (after the method returns): median "
            f"{statistics.median(evals.values()):.1f} s, max {evals[slowest]:.1f} s ({slowest})"
        )
    print(_workers_line(counts["workers"]))
    print(
        f"grid: {counts['done']} run, {counts['skipped']} already done, "
        f"{counts['failed']} failed; {wall:.0f} s wall ({wall / 60:.1f} min), "
        f"peak RSS {max(peak_rss_mib(), children):.0f} MiB (largest local process)"
    )
    return 1 if counts["failed"] else 0


def _cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 when every cell reproduced (verified results written), 1 on a mismatch, 2 on bad
    input (a missing or tampered artifact, an unknown task)."""
    from pathlib import Path

    from benchmark.app.verify import verify_result
    from benchmark.recommender.backbone import set_threads
    from benchmark.results.keys import default_key_path, load_private
    from benchmark.results.record import result_files

    key = load_private(Path(args.key) if args.key else default_key_path())  # before any work
    set_threads(args.threads)
    root = Path(args.submission)
    if not root.exists():
        raise BenchError(f"no such file or folder: {root}")
    files = [root] if root.is_file() else result_files(root)
    if not files:
        raise BenchError(f"{root}: no result files (<task>/<method>/seed<N>.json)")
    failed = 0
    for f in files:
        path, mismatches = verify_result(f, Path(args.out), args.task_file, key)
        if mismatches:
            failed += 1
            print(
                f"{f}: NOT verified: {'; '.join(mismatches[:3])}"
                + (f" (+{len(mismatches) - 3} more)" if len(mismatches) > 3 else "")
            )
        else:
            print(f"{f}: verified -> {path}")
    return 1 if failed else 0


def _cmd_methods(args: argparse.Namespace) -> int:
    from methods.docs import methods_markdown

    print(methods_markdown())
    return 0


def add_grid_options(p: argparse.ArgumentParser) -> None:
    """Where a grid runs: local processes and threads, or a Dask cluster (`run`, `tune`)."""
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="local processes, each with its share of the cores, running (task, seed) groups, "
        "or parts of one when there are fewer groups than processes (default: 2 where there "
        "are 2 or more cores, else 1)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch threads with --jobs 1 (implies it)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local: this machine (--jobs N processes); dask: the workers of a Dask cluster "
        "(--scheduler or --cluster), which return their results to this process to write",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --executor dask: a running `dask scheduler` (tcp://HOST:PORT, or the path of "
        "its --scheduler-file)",
    )
    p.add_argument(
        "--cluster",
        metavar="local:N|slurm",
        help="with --executor dask: start a local cluster of N worker processes (each with its "
        "share of the cores), or Slurm jobs through dask-jobqueue (see --cluster-config)",
    )
    p.add_argument(
        "--cluster-config",
        type=Path,
        metavar="FILE",
        help="with --cluster slurm: a TOML file with a [slurm] table (queue, account, cores, "
        "memory, walltime, processes, gpus, jobs, job_extra, prologue, python, interface)",
    )
    p.add_argument(
        "--resources",
        metavar="NAME=N[,NAME=N]",
        help="with --executor dask: what each (task, seed) group holds while it runs, e.g. "
        "GPU=1 (workers started with --resources GPU=1 then take one group at a time)",
    )
    p.add_argument("--quiet", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracer-bench",
        description="Benchmark for concept unlearning in generative recommenders.",
    )
    parser.add_argument("--version", action="version", version=f"tracer-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    tasks = sub.add_parser("tasks", help="list, show and prepare tasks")
    tsub = tasks.add_subparsers(dest="tasks_command", required=True)
    tsub.add_parser("list", help="the standard suite").set_defaults(func=_cmd_tasks_list)
    p = tsub.add_parser("concepts", help="a dataset's concept tree with item counts, to choose "
                        "a task's [concept] label")  # fmt: skip
    p.add_argument("target", help="a standard task name, a task .toml file, or a genrec-json "
                   "data folder")  # fmt: skip
    p.add_argument("--depth", type=int, default=None, help="show this many levels (default: all)")
    p.add_argument("--separator", help="with a data folder: how category paths join their "
                   "names (default: detected; see [dataset] category_separator)")  # fmt: skip
    p.set_defaults(func=_cmd_tasks_concepts)
    for name, func, text in (
        ("show", _cmd_tasks_show, "a task's sizes and data hash (prepares it if needed)"),
        ("prepare", _cmd_tasks_prepare, "download/read, preprocess, split and cache a task"),
    ):
        p = tsub.add_parser(name, help=text)
        p.add_argument("task", help="a standard task name or the path of a task .toml file")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")
        if name == "prepare":
            p.add_argument("--rebuild", action="store_true", help="ignore the cache")
        p.set_defaults(func=func)

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

    p = sub.add_parser("run", help="run a (task x method x seed) grid into a results folder")
    p.add_argument(
        "--suite",
        choices=list(SUITES),
        help="quick: ml100k-horror, seed 0; ml100k: its three tasks, seeds 0-2; standard: every "
        "standard task, seeds 0-2 (all with every method; --tasks/--seeds override)",
    )
    p.add_argument("--tasks", nargs="+", help="task names or .toml paths (default: the quick task)")
    p.add_argument("--methods", nargs="+", help="method names (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: 0)")
    p.add_argument("--out", default="results", help="results folder (default: ./results)")
    p.add_argument("--overwrite", action="store_true", help="redo finished cells")
    p.add_argument(
        "--save-artifacts",
        action="store_true",
        help="also write each cell's unlearned model (safetensors), served SIDs and ban beside its "
        "result, for `tracer-bench verify`",
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="METHOD.FIELD=VALUE",
        help="override a method's hyper-parameter (repeatable), e.g. tracer.steps=100; the "
        "result records the config and its hash",
    )
    add_grid_options(p)
    p.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "tune", help="tune every method with the same budget on validation targets, then run "
        "the chosen configurations on test targets (the tuned board)",
    )  # fmt: skip
    p.add_argument("--tasks", nargs="+", required=True, help="task names or .toml paths")
    p.add_argument("--methods", nargs="+", help="method names (default: all)")
    p.add_argument("--budget", type=int, default=6,
                   help="configurations tried per method with a search space, its defaults "
                   "first (default: 6)")  # fmt: skip
    p.add_argument(
        "--selection-seeds",
        nargs="+",
        type=int,
        default=[0, 1],
        help="seeds whose validation targets choose the configuration (default: 0 1)",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[0, 1, 2],
        help="seeds of the tuned board, on test targets (default: 0 1 2)",
    )
    p.add_argument("--search-seed", type=int, default=0, help="seeds the random search")
    p.add_argument("--out", default="tuned", help="tune folder (default: ./tuned)")
    add_grid_options(p)
    p.set_defaults(func=_cmd_tune)

    add_leaderboard_parsers(sub)
    add_hub_parsers(sub)

    p = sub.add_parser(
        "verify", help="re-evaluate a submission's artifacts here; write the verified results"
    )
    p.add_argument("submission", help="a result JSON or a results folder, with artifacts beside")
    p.add_argument("--out", default="verified", help="verified results go here (default: verified)")
    p.add_argument("--key", metavar="FILE", help="the board's private key that signs the ledger "
                   "(default: board-key.pem in the configuration folder; `tracer-bench key "
                   "create`)")  # fmt: skip
    p.add_argument("--task-file", action="append", default=[], help="a task .toml (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("methods", help="the registered unlearning methods (markdown)")
    p.set_defaults(func=_cmd_methods)

    p = sub.add_parser("unlearn", help="unlearn a task's concept with a method and evaluate it")
    p.add_argument("--task", required=True, help="standard task name or task .toml path")
    p.add_argument("--method", required=True, help="a method name (see `tracer-bench methods`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--output", help="write the result JSON here (atomically)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_unlearn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_device()
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except BenchError as exc:
        print(f"tracer-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracer-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `tracer-bench validate DIR | head`: the reader left; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
