"""`tracer-bench tasks list | concepts | show | prepare`: the standard suite, a dataset's concept
tree, and a task's sizes and data hash (preparing and caching it)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from tabulate import tabulate


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


def add_parser(sub: argparse._SubParsersAction) -> None:
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
