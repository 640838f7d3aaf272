"""`tracer-bench run | tune`: a (task x method x seed) grid into a results folder, on this
machine's processes or a Dask cluster; `tune` first chooses each method's configuration on
validation targets with the same budget."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmark.util.memory import peak_rss_mib
from tasks.errors import BenchError
from tasks.registry import SUITES


def parse_method_configs(specs: list[str]) -> dict[str, dict]:
    """["tracer.steps=100", ...] -> {"tracer": {"steps": 100}}, typed by the method's Config."""
    import dataclasses

    from methods.registry import get_method

    out: dict[str, dict] = {}
    for spec in specs:
        key, eq, raw = spec.partition("=")
        method, dot, name = key.rpartition(".")  # a method name may hold a dot (tracer-1.2)
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
            checkpoints=checkpoint_source(args),
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
            executor=chosen, checkpoints=checkpoint_source(args),
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
    print(_done_line("grid", "", counts, wall, max(peak_rss_mib(), children)))
    return 1 if counts["failed"] else 0


def _done_line(what: str, unit: str, counts: dict, wall: float, rss: float) -> str:
    """The last line of a grid or a sequence: counts, wall time and peak memory."""
    return (
        f"{what}: {counts['done']} {unit}run, {counts['skipped']} already done, "
        f"{counts['failed']} failed; {wall:.0f} s wall ({wall / 60:.1f} min), "
        f"peak RSS {rss:.0f} MiB (largest local process)"
    )


def _cmd_sequence(args: argparse.Namespace) -> int:
    from benchmark.app.sequence import run_sequence
    from leaderboard.sequence import format_sequence_tables
    from methods.registry import available_methods

    if args.checkpoints:
        raise BenchError("--checkpoints is not available for sequences yet: their base models "
                         "and oracles come from this machine's cache or are trained")  # fmt: skip
    executor = _grid_setup(args)
    methods = args.methods or sorted(available_methods())
    out = Path(args.out)
    start = time.perf_counter()
    with executor as chosen:
        counts = run_sequence(
            args.sequence, methods, args.seeds, out, args.overwrite, progress=not args.quiet,
            jobs=args.jobs, executor=chosen,
        )  # fmt: skip
    wall = time.perf_counter() - start
    if any(out.rglob("seed*.json")):
        from leaderboard.table import leaderboard_table, load_results

        results = load_results(out)
        print(format_sequence_tables(results, leaderboard_table(results)))
    print(_workers_line(counts["workers"]))
    rss = max(peak_rss_mib(), peak_rss_mib(children=True))
    print(_done_line("sequence", "steps ", counts, wall, rss))
    return 1 if counts["failed"] else 0


def add_checkpoint_options(p: argparse.ArgumentParser) -> None:
    """Base models and oracles from a board instead of training (`run`, `tune`, `verify`,
    `validate`)."""
    p.add_argument(
        "--checkpoints",
        metavar="BOARD",
        action="append",
        help="take each (task, seed)'s base model and oracle from this board (a results folder "
        "with checkpoints/, or hf://datasets/ORG/NAME[@REV]) instead of training them; each is "
        "checked against the hash the board's results record (repeatable: a board per task)",
    )
    p.add_argument(
        "--train-models",
        action="store_true",
        help="with --checkpoints: train the models of a (task, seed) the board has none for",
    )


def checkpoint_source(args: argparse.Namespace):
    """The `--checkpoints` board (downloaded first when on the Hub), or None."""
    from benchmark.results.checkpoint_source import CheckpointSource
    from benchmark.results.checkpoints import resolve

    if args.checkpoints is None:
        return None
    return CheckpointSource(tuple(map(resolve, args.checkpoints)), args.train_models)


def add_grid_options(p: argparse.ArgumentParser) -> None:
    """Where a grid runs: local processes and threads, or a Dask cluster (`run`, `tune`)."""
    add_checkpoint_options(p)
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


def add_parser(sub: argparse._SubParsersAction) -> None:
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

    p = sub.add_parser(
        "sequence",
        help="run a sequential task: each (method, seed) forgets the concepts one request after "
        "another, every step evaluated against its own oracle",
    )
    p.add_argument("sequence", help="a standard sequence's name or a sequence .toml path")
    p.add_argument("--methods", nargs="+", help="method names (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    p.add_argument("--out", default="sequences", help="results folder (default: ./sequences)")
    p.add_argument("--overwrite", action="store_true", help="redo finished steps")
    add_grid_options(p)
    p.set_defaults(func=_cmd_sequence)
