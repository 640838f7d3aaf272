"""The `tracer-bench` command: one module per group of subcommands, each with its
`add_parser(subparsers)` and its handlers (`func(args)` returns the exit status). Bad input ends
with one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys

from benchmark import __version__
from benchmark.app.cli import backbone, board, keys, run, submissions, tasks, unlearn
from benchmark.recommender.device import configure_device
from tasks.errors import BenchError

# in the order `tracer-bench --help` lists their subcommands
GROUPS = (
    tasks,  # tasks list / concepts / show / prepare
    backbone,  # train, evaluate, perf: the base model
    run,  # run, tune: grids into a results folder
    board,  # leaderboard
    keys,  # key create / show / trust / resign
    submissions,  # publish, validate, compare, verify
    unlearn,  # methods, unlearn: one method on one task
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Every group's subcommands."""
    for group in GROUPS:
        group.add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tracer-bench",
        description="Benchmark for concept unlearning in generative recommenders.",
    )
    parser.add_argument("--version", action="version", version=f"tracer-bench {__version__}")
    add_parsers(parser.add_subparsers(dest="command", required=True))
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
