"""The `tracer-bench` command. Bad input ends with one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import time

from tabulate import tabulate

from benchmark import __version__
from tasks.errors import BenchError


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


def _print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(tabulate(list(summary.items()), headers=["field", "value"], disable_numparse=True))


def _cmd_tasks_show(args: argparse.Namespace) -> int:
    from tasks import get_task, prepare_task

    _print_summary(prepare_task(get_task(args.task)).summary(), args.json)
    return 0


def _cmd_tasks_prepare(args: argparse.Namespace) -> int:
    from tasks import get_task, prepare_task

    start = time.perf_counter()
    task = prepare_task(get_task(args.task), rebuild=args.rebuild)
    _print_summary(task.summary(), args.json)
    print(f"prepared in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BenchError as exc:
        print(f"tracer-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tracer-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
