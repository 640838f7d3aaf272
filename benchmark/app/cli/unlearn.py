"""`tracer-bench methods | unlearn`: the registered unlearning methods, and one method on one
task's concept, evaluated (one cell of a grid)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate


def _cmd_methods(args: argparse.Namespace) -> int:
    from methods.docs import methods_markdown

    print(methods_markdown())
    return 0


def _cmd_unlearn(args: argparse.Namespace) -> int:
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
    cell, _ = run_cell(ctx, args.method)
    rows = []
    for name, s in cell.metrics.items():
        arrow = "↑" if higher_is_better(name) else "↓"
        ci = "" if s.ci_low != s.ci_low else f"[{s.ci_low:.4f}, {s.ci_high:.4f}]"
        rows.append([name, arrow, f"{s.value:.4f}", ci, s.n])
    print(
        f"task {task.spec.identity} (data {task.content_hash[:12]}), method {args.method}, "
        f"seed {args.seed}"
    )
    print(tabulate(rows, headers=["metric", "", "value", "95% CI", "n"], disable_numparse=True))
    if args.output:
        save_result(Path(args.output), cell)
        print(f"wrote {args.output} and its evidence parquet")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
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
